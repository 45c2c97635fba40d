"""Concurrent writers: 8 envbot processes update one bare remote at once; every update lands exactly once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.bot.envrepo import REPO_ROOT, git, make_env_repo

pytestmark = pytest.mark.docker
WRITERS = 8


def test_eight_concurrent_updates_all_land(tmp_path, images, initial_pins, bot_env):
    apps = "".join(f'  app{i}:\n    values: "apps/app{i}/{{env}}.yaml"\n    chart:\n      path: ../charts/ai-app\n'
                   for i in range(WRITERS))
    policy = ("apps:\n" + apps + "environments:\n  - name: dev\n    namespace: ai-app-dev\n    landing: push\n"
              "  - name: staging\n    namespace: ai-app-staging\n    landing: pull-request\n")
    repo = make_env_repo(tmp_path, policy=policy, pins=initial_pins)
    repo.pull()
    for i in range(WRITERS):
        app_dir = repo.work / "environments" / "apps" / f"app{i}"
        app_dir.mkdir(parents=True)
        for env in ("dev", "staging"):
            (app_dir / f"{env}.yaml").write_text((repo.work / "environments" / "dev" / "values.yaml").read_text())
    base = repo.commit_as_human("eight apps")
    processes = [
        subprocess.Popen([sys.executable, "-m", "bot.main", "update", "dev", "--app", f"app{i}",
                          "--image", images["v3"].ref, "--repo", str(repo.remote)],
                         cwd=REPO_ROOT, env=bot_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(WRITERS)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"{out}\n{err}"
    log = git(repo.remote, "log", "--format=%(trailers:key=Envbot-App,valueonly)", f"{base}..main").split()
    assert sorted(log) == sorted(f"app{i}" for i in range(WRITERS))
    for i in range(WRITERS):
        assert images["v3"].digest in repo.show(f"environments/apps/app{i}/dev.yaml")
    # Linear history: each writer rebased (replayed) onto the others instead of merging or overwriting.
    assert git(repo.remote, "rev-list", "--merges", "--count", "main") == "0"
