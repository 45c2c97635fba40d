"""envbot propose against a bare remote: opened, idempotent, supersede, rollback-follow, auto-merge,
and gates on every write (`update` of a gated environment, `promote --override-reason` past the order).

The real CLI runs in a subprocess against the TLS registry, Azurite and helm (see conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.bot.envrepo import EnvRepo, git, make_env_repo, policy_text, run_envbot

pytestmark = pytest.mark.docker
STAGING = "environments/staging/values.yaml"
PROD = "environments/prod/values.yaml"
STAGING_BRANCH = "envbot/promote-ai-app-staging"
PROD_BRANCH = "envbot/promote-ai-app-prod"



def prod_merge_policy(auto_merge: str, strategy: str) -> str:
    return policy_text(prod_extra=f"    autoMerge: {auto_merge}\n    mergeStrategy: {strategy}\n")


def make_repo(tmp_path, initial_pins, auto_merge: bool = False, strategy: str = "noFastForward") -> EnvRepo:
    policy = prod_merge_policy("true" if auto_merge else "false", strategy)
    return make_env_repo(tmp_path, policy=policy, pins=initial_pins)


def digest(repo: EnvRepo, path: str, ref: str = "main") -> str:
    return YAML(typ="safe").load(repo.show(path, ref))["image"]["digest"]


def refs(repo: EnvRepo) -> dict[str, str]:
    out = git(repo.remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines())


def propose(repo: EnvRepo, bot_env: dict[str, str], *extra: str) -> dict[tuple[str, str], dict[str, Any]]:
    proc = run_envbot("propose", "--repo", str(repo.remote), "--json", *extra, env=bot_env)
    return {(p["app"], p["env"]): p for p in json.loads(proc.stdout)["proposals"]}


def gates(proposal: dict[str, Any]) -> dict[str, str]:
    return {g["name"]: g["state"] for g in proposal["gates"]}


def test_propose_opens_and_a_second_run_changes_nothing(tmp_path, initial_pins, images, bot_env):
    repo = make_repo(tmp_path, initial_pins)
    first = propose(repo, bot_env)
    # staging runs dev's release already; prod runs v1 while staging runs v2 (landed long ago: soaked).
    assert first[("ai-app", "staging")]["action"] == "unchanged"
    prod = first[("ai-app", "prod")]
    assert prod["action"] == "opened"
    # prod's model changes too (model 1 -> 2): its model gates (signature, metrics) are a status as well.
    assert gates(prod) == {"soak": "success", "freeze": "success", "artifacts": "success", "chart": "success",
                           "model": "success"}
    assert prod["green"] is True
    assert digest(repo, PROD, PROD_BRANCH) == images["v2"].digest
    message = repo.message(PROD_BRANCH)
    assert "Envbot-Proposed-By: envbot propose" in message and "Envbot-From: staging@" in message
    assert repo.count() == 1   # main moves only when the proposal is merged

    before = refs(repo)
    second = propose(repo, bot_env)
    assert second[("ai-app", "prod")]["action"] == "unchanged"   # green, waiting for a reviewer
    assert second[("ai-app", "prod")]["commit"] == prod["commit"]
    assert refs(repo) == before   # no commit, no force-push


def test_soak_blocks_then_supersede_then_rollback_follow(tmp_path, initial_pins, images, bot_env):
    repo = make_repo(tmp_path, initial_pins)
    remote = str(repo.remote)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", remote, env=bot_env)
    opened = propose(repo, bot_env)[("ai-app", "staging")]
    assert opened["action"] == "opened"
    assert gates(opened)["soak"] == "pending"
    soak = next(g for g in opened["gates"] if g["name"] == "soak")
    assert soak["passes_at"] and "staging requires 30m" in soak["description"]
    assert opened["passes_at"] == soak["passes_at"]
    assert digest(repo, STAGING, STAGING_BRANCH) == images["v3"].digest

    # Nothing new: the proposal waits on its soak gate; nothing is written.
    before = refs(repo)
    again = propose(repo, bot_env)[("ai-app", "staging")]
    assert again["action"] == "blocked" and "soak:" in again["reason"]
    assert refs(repo) == before

    # A newer dev release supersedes the open proposal: same branch, rebuilt, naming what it replaced.
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", remote, env=bot_env)
    updated = propose(repo, bot_env)[("ai-app", "staging")]
    assert updated["action"] == "updated"
    assert updated["superseded"]["image"]["digest"] == images["v3"].digest
    assert digest(repo, STAGING, STAGING_BRANCH) == images["v1"].digest
    assert f"Envbot-Supersedes: v3 ({images['v3'].digest.split(':')[1][:12]})" in repo.message(STAGING_BRANCH)
    assert {b for b in refs(repo) if b.startswith("envbot/")} == {STAGING_BRANCH, PROD_BRANCH}

    # dev rolled back to what staging runs: the proposal follows by closing; its branch is gone.
    run_envbot("update", "dev", "--image", images["v2"].ref, "--repo", remote, env=bot_env)
    closed = propose(repo, bot_env)[("ai-app", "staging")]
    assert closed["action"] == "closed"
    assert STAGING_BRANCH not in refs(repo)
    assert propose(repo, bot_env)[("ai-app", "staging")]["action"] == "unchanged"


def test_rollback_of_the_upstream_rebuilds_the_proposal(tmp_path, initial_pins, images, bot_env):
    repo = make_repo(tmp_path, initial_pins)
    remote = str(repo.remote)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", remote, env=bot_env)
    propose(repo, bot_env)
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", remote, env=bot_env)
    propose(repo, bot_env)
    # `envbot rollback dev` reverts dev's last change: dev runs v3 again, and so does the proposal.
    run_envbot("rollback", "dev", "--repo", remote, env=bot_env)
    followed = propose(repo, bot_env)[("ai-app", "staging")]
    assert followed["action"] == "updated"
    assert digest(repo, STAGING, STAGING_BRANCH) == images["v3"].digest


@pytest.mark.parametrize("strategy", ["noFastForward", "squash"])
def test_auto_merge_completes_a_green_proposal_on_a_plain_remote(tmp_path, initial_pins, images, bot_env,
                                                                 strategy):
    repo = make_repo(tmp_path, initial_pins, auto_merge=True, strategy=strategy)
    result = propose(repo, bot_env)[("ai-app", "prod")]
    assert result["action"] == "merged"
    assert digest(repo, PROD) == images["v2"].digest
    assert PROD_BRANCH not in refs(repo)
    message = repo.message()
    assert "Envbot-Action: promote" in message and "Envbot-Env: prod" in message   # trailers on main
    parents = git(repo.remote, "rev-list", "--parents", "-n", "1", "main").split()[1:]
    assert len(parents) == (2 if strategy == "noFastForward" else 1)
    # requireDigest and every other prod setting stay.
    assert "requireDigest: true" in repo.show(PROD)
    count = repo.count()
    assert propose(repo, bot_env)[("ai-app", "prod")]["action"] == "unchanged"
    assert repo.count() == count


def test_auto_merge_waits_for_the_soak(tmp_path, initial_pins, images, bot_env):
    repo = make_repo(tmp_path, initial_pins, auto_merge=True)
    # staging receives v3 now (a reviewed change): prod's 1h soak has not passed.
    run_envbot("update", "staging", "--image", images["v3"].ref, "--override-reason", "test setup",
               "--repo", str(repo.remote), env=bot_env)
    repo.pull()
    git(repo.work, "merge", "-q", "--ff-only", "origin/envbot/update-ai-app-staging")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    head = repo.head()
    result = propose(repo, bot_env)[("ai-app", "prod")]
    assert result["action"] == "opened" and gates(result)["soak"] == "pending"
    assert repo.head() == head   # not merged: a gate is red
    assert propose(repo, bot_env)[("ai-app", "prod")]["action"] == "blocked"
    assert repo.head() == head


def test_dry_run_changes_nothing(tmp_path, initial_pins, images, bot_env):
    repo = make_repo(tmp_path, initial_pins, auto_merge=True)
    before = refs(repo)
    result = propose(repo, bot_env, "--dry-run")[("ai-app", "prod")]
    assert result["action"] == "merged" and "dry run" in result["reason"]   # what a real run would do
    assert result["commit"] is None
    assert refs(repo) == before


def test_freeze_blocks_and_says_when_it_opens(tmp_path, initial_pins, images, bot_env):
    policy = prod_merge_policy("true", "squash") + (
        '    freeze:\n      - schedule: "* * * * *"\n        duration: 1h\n')
    repo = make_env_repo(tmp_path, policy=policy, pins=initial_pins)
    result = propose(repo, bot_env)[("ai-app", "prod")]
    assert result["action"] == "opened"   # proposed, but never merged during a freeze
    freeze = next(g for g in result["gates"] if g["name"] == "freeze")
    assert freeze["state"] == "pending" and freeze["passes_at"] and "opens" in freeze["description"]
    assert repo.count() == 1


# --- gates on every write --------------------------------------------------------------------------

def test_update_of_a_gated_environment_is_refused_in_one_line(env_repo, images, bot_env):
    before = refs(env_repo)
    proc = run_envbot("update", "prod", "--image", images["v3"].ref, "--repo", str(env_repo.remote),
                      env=bot_env, check=False)
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("envbot: error: prod is gated (order, soak):")
    assert refs(env_repo) == before


def test_update_with_override_records_each_bypassed_gate_and_the_actor(env_repo, images, bot_env):
    env = bot_env | {"BUILD_REQUESTEDFOR": "Jane Doe"}
    run_envbot("update", "prod", "--image", images["v3"].ref, "--override-reason", "hotfix 12",
               "--repo", str(env_repo.remote), env=env)
    message = env_repo.message("envbot/update-ai-app-prod")
    assert "Envbot-Override: hotfix 12" in message
    assert "Envbot-Bypassed-Gate: order\nEnvbot-Bypassed-Gate: soak\n" in message
    assert "Envbot-Actor: Jane Doe" in message
    run_envbot("update", "staging", "--image", images["v3"].ref, "--override-reason", "x", "--actor", "ops-bot",
               "--repo", str(env_repo.remote), env=env)
    assert "Envbot-Actor: ops-bot" in env_repo.message("envbot/update-ai-app-staging")


def test_promote_override_really_bypasses_the_order(env_repo, images, bot_env):
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", str(env_repo.remote), env=bot_env)
    run_envbot("promote", "dev", "prod", "--override-reason", "x", "--repo", str(env_repo.remote), env=bot_env)
    assert digest(env_repo, PROD, PROD_BRANCH) == images["v3"].digest
    message = env_repo.message(PROD_BRANCH)
    assert "Envbot-Bypassed-Gate: order" in message and "Envbot-Bypassed-Gate: soak" in message


def test_override_help_says_what_it_bypasses(bot_env):
    promote_help = " ".join(run_envbot("promote", "--help", env=bot_env).stdout.split())
    assert "order gate" in promote_help and "freeze" in promote_help
    update_help = " ".join(run_envbot("update", "--help", env=bot_env).stdout.split())
    assert "its order" in update_help and "soak time" in update_help and "freeze windows" in update_help


def test_model_only_update_keeps_the_image(env_repo, images, models, bot_env):
    before = digest(env_repo, "environments/dev/values.yaml")
    run_envbot("update", "dev", "--model", models["1"].uri, "--repo", str(env_repo.remote), env=bot_env)
    assert digest(env_repo, "environments/dev/values.yaml") == before
    assert YAML(typ="safe").load(env_repo.show("environments/dev/values.yaml"))["model"]["sha256"] == \
        models["1"].sha256
    proc = run_envbot("update", "dev", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert "update needs --image REF, --model URI, --chart OCI-REF or several of them" in proc.stderr


# --- concurrent writers ----------------------------------------------------------------------------

def test_propose_concurrent_with_update_and_promote_loses_nothing(tmp_path, initial_pins, images, bot_env):
    import subprocess
    import sys

    from tests.bot.envrepo import REPO_ROOT

    apps = [f"app{i}" for i in range(4)]
    policy = "apps:\n" + "".join(
        f'  {app}:\n    values: "apps/{app}/{{env}}.yaml"\n    chart:\n      path: ../charts/ai-app\n'
        for app in apps) + (
        "environments:\n  - name: dev\n    namespace: ai-app-dev\n    landing: push\n"
        "  - name: staging\n    namespace: ai-app-staging\n    landing: pull-request\n    autoMerge: true\n")
    repo = make_env_repo(tmp_path, policy=policy, pins=initial_pins)
    repo.pull()
    for app in apps:
        app_dir = repo.work / "environments" / "apps" / app
        app_dir.mkdir(parents=True)
        for env in ("dev", "staging"):
            (app_dir / f"{env}.yaml").write_text((repo.work / "environments" / "staging" / "values.yaml").read_text())
    # app0 and app1 start with dev ahead of staging: propose merges them while the updates land.
    for app in apps[:2]:
        dev = repo.work / "environments" / "apps" / app / "dev.yaml"
        dev.write_text(dev.read_text().replace(images["v2"].digest, images["v1"].digest))
    base = repo.commit_as_human("four apps")
    remote = str(repo.remote)

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "bot.main", *args, "--repo", remote], cwd=REPO_ROOT,
                                env=bot_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    processes = [start("update", "dev", "--app", app, "--image", images["v3"].ref) for app in apps[2:]]
    processes += [start("propose"), start("propose"),
                  start("promote", "dev", "staging", "--app", "app1", "--override-reason", "race test")]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{process.args}\n{out}\n{err}"
    # Every update landed exactly once, on a linear first-parent history.
    updated = git(repo.remote, "log", "--first-parent", "--format=%(trailers:key=Envbot-Action,valueonly)",
                  f"{base}..main").split()
    assert updated.count("update") == 2
    for app in apps[2:]:
        assert digest(repo, f"environments/apps/{app}/dev.yaml") == images["v3"].digest
    # One more run settles everything: every staging runs its dev's release, nothing is left open.
    settled = propose(repo, bot_env)
    assert all(p["action"] in ("merged", "unchanged", "closed") for p in settled.values()), settled
    for app in apps:
        assert (digest(repo, f"environments/apps/{app}/staging.yaml")
                == digest(repo, f"environments/apps/{app}/dev.yaml"))
    assert [b for b in refs(repo) if b.startswith("envbot/")] == []
