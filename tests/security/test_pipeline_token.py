"""The environments-PR pipeline never hands the job token to a step that renders a pull request's content,
and renders with the chart source of the target branch (docs/security.md).

The render job's bash steps are run here as the agent would run them (each with only its own `env:`
mappings, `##vso[task.setvariable]` carried to later steps), against a pull request that points the
chart at a helm flag, with a fake helm on PATH recording argv and environment.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.bot.envrepo import REPO_ROOT, git, make_env_repo, policy_text
from tests.pipelines.azure_schema import load_yaml
from tests.security.conftest import CANARY_ENV, FakeHelm

PIPELINE = REPO_ROOT / "pipelines" / "environments-pr.yml"
TOKEN = "$(System.AccessToken)"
RENDERS = re.compile(r"\bhelm\b|render_environment\.py|\benvbot diff\b|changed_environments\.py")


def jobs() -> list[dict]:
    return [job for stage in load_yaml(PIPELINE)["stages"] for job in stage["jobs"]]


def test_only_the_comment_step_maps_the_token_and_it_touches_no_pull_request_content() -> None:
    holders = []
    for job in jobs():
        assert TOKEN not in str(job.get("variables", "")), job["job"]
        for step in job["steps"]:
            if TOKEN in str(step.get("env", {})):
                holders.append((job, step))
    assert TOKEN not in str(load_yaml(PIPELINE).get("variables", ""))
    assert len(holders) == 1
    job, step = holders[0]
    assert not RENDERS.search(step["bash"]) and "post_pr_comment.py" in step["bash"]
    # Its job checks out only this repository: no pull-request file is on that agent.
    checkouts = [s["checkout"] for s in job["steps"] if "checkout" in s]
    assert checkouts == ["self"]
    assert any(s.get("download") == "current" for s in job["steps"])


def pull_request_checkout(tmp_path: Path, change) -> Path:
    """The agent's layout for a pull request made by CHANGE(work tree): this repository at app/, the
    pull request's commit (detached) at environments/; returns the agent's working directory."""
    repo = make_env_repo(tmp_path)
    git(repo.work, "checkout", "-q", "-b", "pr")
    change(repo.work)
    git(repo.work, "add", "-A")
    git(repo.work, "-c", "user.name=Mallory", "-c", "user.email=m@example.com", "commit", "-qm", "pr")
    git(repo.work, "push", "-q", "origin", "pr")
    work = tmp_path / "agent"
    work.mkdir()
    (work / "app").symlink_to(REPO_ROOT)
    git(work, "clone", "-q", str(repo.remote), "environments")
    git(work / "environments", "checkout", "-q", "--detach", "origin/pr")
    return work


def run_render_job(work: Path, fake_helm: FakeHelm, home: Path, until: str | None = None) -> list[str]:
    """The render job's bash steps, in order, as the agent runs them; the names of the steps run."""
    job = next(j for j in jobs() if any(s.get("checkout") == "environments" for s in j["steps"]))
    variables = {"System.PullRequest.TargetBranch": "refs/heads/main", "kubernetesVersion": "1.30.0",
                 "System.AccessToken": CANARY_ENV, "environmentsRepository": "ai-app-environments",
                 # Set by the Docker@2 login task: the registry login handed to helm for pinned charts.
                 "DOCKER_CONFIG": str(home / ".docker")}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEM_", "AZURE_", "ENVBOT_"))}
    base_env |= {"PATH": f"{fake_helm.directory}{os.pathsep}{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}"
                         f"{os.environ['PATH']}",
                 "PYTHONPATH": str(REPO_ROOT), "HOME": str(home)}
    ran = []
    for step in job["steps"]:
        if "bash" not in step:
            continue
        env = dict(base_env)
        for key, value in (step.get("env") or {}).items():
            env[key] = re.sub(r"\$\(([\w.]+)\)", lambda m: variables[m.group(1)], str(value))
        proc = subprocess.run(["bash", "-c", step["bash"]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{step['displayName']}:\n{proc.stdout}\n{proc.stderr}"
        for name, value in re.findall(r"##vso\[task\.setvariable variable=(\w+)\](.*)", proc.stdout):
            variables[name] = value.strip()
        ran.append(step["displayName"])
        if until and until in step["displayName"]:
            break
    return ran


def test_render_job_renders_the_target_branchs_chart_without_the_token(tmp_path: Path, fake_helm: FakeHelm) -> None:
    def hostile(work: Path) -> None:
        # The chart pointed at a helm flag, and a value changed.
        chart = "    chart:\n      repo: https://127.0.0.1:9/c\n      name: \"--post-renderer=/bin/sh\"\n"
        (work / "environments" / "promotion.yaml").write_text(
            policy_text().replace("    chart:\n      path: ../charts/ai-app\n", chart))
        values = work / "environments" / "staging" / "values.yaml"
        values.write_text(values.read_text().replace("replicaCount: 2", "replicaCount: 3"))

    work = pull_request_checkout(tmp_path, hostile)
    ran = run_render_job(work, fake_helm, tmp_path)
    assert any("envbot diff" in name for name in ran) and any("Render" in name for name in ran)
    calls = fake_helm.calls()
    assert calls, "the render job rendered nothing"
    for call in calls:
        assert CANARY_ENV not in str(call["env"]), "a rendering step saw the job token"
        assert not any("post-renderer" in arg for arg in call["argv"]), call["argv"]
        # The chart is the target branch's: the path in its promotion.yaml.
        assert call["argv"][-1].endswith("charts/ai-app"), call["argv"]
    diff = (work / "envbot-diff" / "envbot-diff.md").read_text()
    assert "### staging" in diff and "changes environments/promotion.yaml" in diff


def test_a_symlinked_promotion_yaml_is_not_written_through(tmp_path: Path, fake_helm: FakeHelm) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")

    def symlink(work: Path) -> None:
        policy = work / "environments" / "promotion.yaml"
        policy.unlink()
        policy.symlink_to(outside)

    work = pull_request_checkout(tmp_path, symlink)
    run_render_job(work, fake_helm, tmp_path, until="promotion.yaml")
    assert outside.read_text() == "untouched\n"
    policy = work / "environments" / "environments" / "promotion.yaml"
    assert not policy.is_symlink() and policy.read_text() == policy_text()
