"""Test helpers for envbot: an environments repo behind a bare remote, and envbot run as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bot.values import ReleasePin, edit_chart_pin_text, edit_pin_text

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
OLD_DATE = "2024-01-01T12:00:00+00:00"   # initial pins landed long ago: their soak is over

POLICY = """\
# test policy
apps:
  ai-app:
    values: "{{env}}/values.yaml"
    chart:
      path: ../charts/ai-app
environments:
  - name: dev
    namespace: ai-app-dev
    landing: push
  - name: staging
    namespace: ai-app-staging
    landing: {staging_landing}
    soak: 30m
  - name: prod
    namespace: ai-app-prod
    landing: pull-request
    soak: 1h
{prod_extra}"""


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def policy_text(staging_landing: str = "pull-request", prod_extra: str = "", chart_path: bool = True) -> str:
    """The test policy; PROD_EXTRA: more keys of prod (indented lines), e.g. freeze windows or autoMerge."""
    return (POLICY if chart_path else PINNED_POLICY).format(staging_landing=staging_landing, prod_extra=prod_extra)


@dataclass
class EnvRepo:
    remote: Path          # bare repository envbot talks to
    work: Path            # a clone for the test to inspect and to make "human" commits

    def pull(self) -> None:
        git(self.work, "fetch", "-q", "origin")
        git(self.work, "reset", "-q", "--hard", "origin/main")

    def head(self, ref: str = "main") -> str:
        return git(self.remote, "rev-parse", ref)

    def count(self, ref: str = "main") -> int:
        return int(git(self.remote, "rev-list", "--count", ref))

    def show(self, path: str, ref: str = "main") -> str:
        return git(self.remote, "show", f"{ref}:{path}")

    def message(self, ref: str = "main") -> str:
        return git(self.remote, "log", "-1", "--format=%B", ref)

    def commit_as_human(self, message: str, date: str | None = None) -> str:
        env = {"GIT_AUTHOR_NAME": "Human", "GIT_AUTHOR_EMAIL": "human@example.com",
               "GIT_COMMITTER_NAME": "Human", "GIT_COMMITTER_EMAIL": "human@example.com"}
        if date:
            env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message, env=env)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")


# A policy for repos whose environments all pin their chart: no chart in the repository at all.
PINNED_POLICY = POLICY.replace("    chart:\n      path: ../charts/ai-app\n", "")


def make_env_repo(tmp: Path, policy: str | None = None, values: dict[str, str] | None = None,
                  pins: dict[str, ReleasePin] | None = None, separate: bool = False) -> EnvRepo:
    """environments/ (promotion.yaml + the real per-env values, PINS written in) and charts/ai-app, on a bare remote.

    A pin with a chart also writes the environment's chart.yaml (the template's, re-pinned). SEPARATE: the
    layout docs/bootstrap-aks.md has people create, promotion.yaml and <env>/ at the root and no charts/.
    """
    remote = tmp / "environments.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp / "work"
    git(tmp, "clone", "-q", str(remote), str(work))
    root = work if separate else work / "environments"
    root.mkdir(exist_ok=True)
    (root / "promotion.yaml").write_text(policy or policy_text())
    for env in ENVS:
        (root / env).mkdir()
        text = (values or {}).get(env) or (REPO_ROOT / "environments" / env / "values.yaml").read_text()
        if pins and env in pins:
            text = edit_pin_text(text, pins[env], f"{env}/values.yaml")
        (root / env / "values.yaml").write_text(text)
        if pins and env in pins and pins[env].chart.repository:
            template = (REPO_ROOT / "environments" / env / "chart.yaml").read_text()
            (root / env / "chart.yaml").write_text(edit_chart_pin_text(template, pins[env].chart,
                                                                       f"{env}/chart.yaml"))
    if not separate:
        shutil.copytree(REPO_ROOT / "charts" / "ai-app", work / "charts" / "ai-app")
    repo = EnvRepo(remote, work)
    git(work, "checkout", "-q", "-b", "main")
    repo.commit_as_human("environments: initial pins", date=OLD_DATE)
    return repo


def run_envbot(*args: str, env: dict[str, str], cwd: Path | None = None, check: bool | None = True
               ) -> subprocess.CompletedProcess[str]:
    """`envbot ARGS` in a subprocess (the real CLI); CHECK True: must succeed, False: must fail."""
    proc = subprocess.run([sys.executable, "-m", "bot.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO_ROOT, timeout=300)
    if check is True:
        assert proc.returncode == 0, f"envbot {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    elif check is False:
        assert proc.returncode != 0, f"envbot {' '.join(args)} should have failed:\n{proc.stdout}\n{proc.stderr}"
        assert proc.stderr.startswith("envbot: error: ") or "\nenvbot: error: " in proc.stderr, proc.stderr
    return proc
