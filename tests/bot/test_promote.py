"""envbot promote: order, soak, freeze, override, pull-request description with changelog and rendered diff."""

from __future__ import annotations

import json

import pytest
from ruamel.yaml import YAML

from tests.bot.envrepo import make_env_repo, policy_text, run_envbot

pytestmark = pytest.mark.docker
STAGING = "environments/staging/values.yaml"
PROD = "environments/prod/values.yaml"
BRANCH = "envbot/promote-ai-app-staging"


def image_pin(text: str) -> dict:
    return YAML(typ="safe").load(text)["image"]


def test_soak_blocks_a_fresh_release_and_override_is_recorded(env_repo, images, models, bot_env, source_repo):
    remote = str(env_repo.remote)
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", remote, env=bot_env)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--model", models["1"].uri, "--repo", remote,
               env=bot_env)
    head = env_repo.head()
    blocked = run_envbot("promote", "dev", "staging", "--repo", remote, env=bot_env, check=False)
    assert "soak: the release landed in dev" in blocked.stderr
    assert "staging requires 30m" in blocked.stderr
    assert env_repo.head() == head
    proc = run_envbot("promote", "dev", "staging", "--override-reason", "hotfix for incident 42", "--repo", remote,
                      "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert result["landed"] == "branch"   # a plain git remote: the pull-request branch is pushed
    assert env_repo.head() == head
    assert image_pin(env_repo.show(STAGING, BRANCH))["digest"] == images["v3"].digest
    message = env_repo.message(BRANCH)
    assert "Envbot-Override: hotfix for incident 42" in message
    assert f"Envbot-From: dev@{head}" in message
    description = result["description"]
    # What changes, old -> new, for image and model.
    assert f"`{images['v3'].digest}`" in description
    assert f"| `model.sha256` | `{models['2'].sha256}` | `{models['1'].sha256}` |" in description
    # staging runs v2 (source commit 2), the promotion brings v3 (commit 4).
    assert "2 commit(s)" in description
    assert source_repo.subjects[4] in description
    assert "### Rendered manifests (helm template)" in description
    assert "Deployment/ai-app" in description


def test_changelog_lists_source_commits_between_images(env_repo, images, bot_env, source_repo):
    remote = str(env_repo.remote)
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", remote, env=bot_env)
    run_envbot("promote", "dev", "staging", "--override-reason", "test", "--repo", remote, env=bot_env)
    env_repo.pull()
    # Land the branch as a reviewer would, then move dev on and promote again.
    from tests.bot.envrepo import git

    git(env_repo.work, "merge", "-q", "--ff-only", f"origin/{BRANCH}")
    git(env_repo.work, "push", "-q", "origin", "HEAD:main")
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", remote, env=bot_env)
    proc = run_envbot("promote", "dev", "staging", "--override-reason", "test", "--repo", remote, "--json",
                      env=bot_env)
    description = json.loads(proc.stdout)["description"]
    # v1 was built from commit 0, v3 from commit 4: commits 1..4 are new.
    for index in (1, 2, 3, 4):
        assert source_repo.commits[index][:12] in description
        assert source_repo.subjects[index] in description
    assert source_repo.commits[0][:12] + "`" not in description.split("commit(s)")[1]


def test_promote_follows_the_order(env_repo, images, bot_env):
    proc = run_envbot("promote", "dev", "prod", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert "promotions follow dev -> staging -> prod" in proc.stderr
    proc = run_envbot("promote", "prod", "staging", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert "cannot promote prod to staging" in proc.stderr


def test_soaked_release_promotes_without_override(env_repo, images, bot_env):
    # staging's pin landed long ago (initial commit): prod's 1h soak is over, no freeze configured.
    proc = run_envbot("promote", "staging", "prod", "--repo", str(env_repo.remote), "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert result["gates"] == []
    staging = image_pin(env_repo.show(STAGING))
    assert image_pin(env_repo.show(PROD, "envbot/promote-ai-app-prod"))["digest"] == staging["digest"]
    # requireDigest and every other prod setting stay.
    assert "requireDigest: true" in env_repo.show(PROD, "envbot/promote-ai-app-prod")


def test_freeze_window_blocks_prod(tmp_path, initial_pins, bot_env):
    freeze = '    freeze:\n      - schedule: "* * * * *"\n        duration: 1h\n        timezone: Europe/Amsterdam\n'
    repo = make_env_repo(tmp_path, policy=policy_text(prod_extra=freeze), pins=initial_pins)
    proc = run_envbot("promote", "staging", "prod", "--repo", str(repo.remote), env=bot_env, check=False)
    assert "freeze: prod is frozen by window '* * * * *' (Europe/Amsterdam)" in proc.stderr
    assert repo.count() == 1
    run_envbot("promote", "staging", "prod", "--override-reason", "security fix", "--repo", str(repo.remote),
               env=bot_env)
    assert "Envbot-Override: security fix" in repo.message("envbot/promote-ai-app-prod")


def test_push_landing_promotes_onto_main_and_reruns_are_idempotent(tmp_path, images, initial_pins, bot_env):
    repo = make_env_repo(tmp_path, policy=policy_text(staging_landing="push"), pins=initial_pins)
    remote = str(repo.remote)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", remote, env=bot_env)
    run_envbot("promote", "dev", "staging", "--override-reason", "test", "--repo", remote, env=bot_env)
    assert image_pin(repo.show(STAGING))["digest"] == images["v3"].digest
    count = repo.count()
    proc = run_envbot("promote", "dev", "staging", "--override-reason", "test", "--repo", remote, env=bot_env)
    assert "already pinned" in proc.stdout
    assert repo.count() == count


def test_promote_dry_run_prints_patch_and_description(env_repo, images, bot_env):
    head = env_repo.head()
    proc = run_envbot("promote", "staging", "prod", "--dry-run", "--repo", str(env_repo.remote), env=bot_env)
    assert proc.stdout.startswith(f"diff --git a/{PROD} b/{PROD}")
    assert "# Pull request description:" in proc.stdout
    assert "envbot/promote-ai-app-prod" not in __import__("subprocess").run(
        ["git", "branch", "--list"], cwd=env_repo.remote, capture_output=True, text=True).stdout
    assert env_repo.head() == head
