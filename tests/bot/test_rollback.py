"""envbot rollback: a real git revert of envbot's commits for one environment."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from bot.git import DEFAULT_EMAIL
from tests.bot.envrepo import git, run_envbot

pytestmark = pytest.mark.docker
DEV = "environments/dev/values.yaml"


def digest(text: str) -> str:
    return YAML(typ="safe").load(text)["image"]["digest"]


def test_rollback_reverts_newest_release_then_the_one_before(env_repo, images, bot_env):
    remote = str(env_repo.remote)
    original = env_repo.show(DEV)
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", remote, env=bot_env)
    first = env_repo.head()
    after_first = env_repo.show(DEV)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", remote, env=bot_env)
    second = env_repo.head()
    run_envbot("rollback", "dev", "--repo", remote, env=bot_env)
    assert env_repo.show(DEV) == after_first          # byte for byte: a revert, not a re-render
    assert f"Envbot-Reverts: {second}" in env_repo.message()
    assert "Envbot-Action: rollback" in env_repo.message()
    assert git(env_repo.remote, "show", "--name-only", "--format=", "main") == DEV
    # A second rollback skips the reverted release and the rollback itself.
    run_envbot("rollback", "dev", "--repo", remote, env=bot_env)
    assert env_repo.show(DEV) == original
    assert f"Envbot-Reverts: {first}" in env_repo.message()


def test_rollback_to_revision_reverts_everything_after_it(env_repo, images, bot_env):
    remote = str(env_repo.remote)
    base = env_repo.head()
    original = env_repo.show(DEV)
    for tag in ("v1", "v3"):
        run_envbot("update", "dev", "--image", images[tag].ref, "--repo", remote, env=bot_env)
    run_envbot("update", "staging", "--image", images["v3"].ref, "--override-reason", "test", "--repo", remote,
               env=bot_env)  # a PR branch
    proc = run_envbot("rollback", "dev", "--to", base, "--repo", remote, "--dry-run", env=bot_env)
    assert proc.stdout.startswith(f"diff --git a/{DEV} b/{DEV}")
    run_envbot("rollback", "dev", "--to", base[:10], "--repo", remote, env=bot_env)
    assert env_repo.show(DEV) == original
    assert env_repo.message().count("Envbot-Reverts:") == 2


def test_rollback_conflict_is_an_error_and_pushes_nothing(env_repo, images, bot_env):
    remote = str(env_repo.remote)
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", remote, env=bot_env)
    env_repo.pull()
    values = env_repo.work / DEV
    values.write_text(values.read_text().replace('tag: "v1"', 'tag: "v1-hotfixed"'))
    env_repo.commit_as_human("dev: hand-edited tag")
    head = env_repo.head()
    proc = run_envbot("rollback", "dev", "--repo", remote, env=bot_env, check=False)
    assert "conflicts with later changes in environments/dev/values.yaml" in proc.stderr
    assert env_repo.head() == head


def test_rollback_refuses_a_commit_touching_other_environments(env_repo, bot_env):
    env_repo.pull()
    for env in ("dev", "staging"):
        path = env_repo.work / "environments" / env / "values.yaml"
        path.write_text(path.read_text().replace("tag: ", "tag: ", 1) + "# touched\n")
    git(env_repo.work, "add", "-A")
    # Made as envbot (its identity and trailers): only envbot's commits are releases (bot/releases.py).
    git(env_repo.work, "-c", "user.name=envbot", "-c", f"user.email={DEFAULT_EMAIL}", "commit", "-q", "-m",
        "both\n\nEnvbot-Action: update\nEnvbot-App: ai-app\nEnvbot-Env: dev")
    git(env_repo.work, "push", "-q", "origin", "HEAD:main")
    head = env_repo.head()
    proc = run_envbot("rollback", "dev", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert "would also change environments/staging/values.yaml" in proc.stderr
    assert env_repo.head() == head


def test_nothing_to_roll_back(env_repo, bot_env):
    proc = run_envbot("rollback", "prod", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert "no envbot update or promotion of ai-app in prod" in proc.stderr
