"""envbot update against a bare remote, the TLS registry and Azurite."""

from __future__ import annotations

import json
import subprocess

import pytest
from ruamel.yaml import YAML

from tests.bot.envrepo import git, run_envbot

pytestmark = pytest.mark.docker
DEV = "environments/dev/values.yaml"


def pins(text: str) -> dict:
    doc = YAML(typ="safe").load(text)
    return {"image": doc["image"], "model": doc["model"]}


def test_update_pins_digest_and_model_and_pushes(env_repo, images, models, bot_env):
    before = env_repo.show(DEV)
    proc = run_envbot("update", "dev", "--image", images["v3"].ref, "--model", models["1"].uri,
                      "--repo", str(env_repo.remote), "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert result["landed"] == "pushed"
    assert result["commit"] == env_repo.head()
    after = env_repo.show(DEV)
    pinned = pins(after)
    assert pinned["image"] == {"repository": images["v3"].name, "tag": "v3", "digest": images["v3"].digest}
    assert pinned["model"]["sha256"] == models["1"].sha256
    assert pinned["model"]["uri"] == models["1"].uri
    assert pinned["model"]["version"] == "1"
    # Only the pinned lines changed; comments and everything else stay byte for byte.
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert {a.split(":")[0].strip() for a, _ in changed} <= {"repository", "tag", "digest", "uri", "sha256", "version"}
    assert len(before.splitlines()) == len(after.splitlines())
    message = env_repo.message()
    assert "Envbot-Action: update" in message
    assert "Envbot-Env: dev" in message
    assert f"Envbot-Image: {images['v3'].name}@{images['v3'].digest}" in message
    assert f"Envbot-Model: iris-logreg@1 sha256:{models['1'].sha256}" in message
    assert git(env_repo.remote, "log", "-1", "--format=%an <%ae>") == "envbot <envbot@users.noreply.local>"


def test_same_inputs_again_make_no_commit(env_repo, images, bot_env):
    args = ("update", "dev", "--image", images["v1"].ref, "--repo", str(env_repo.remote))
    run_envbot(*args, env=bot_env)
    head = env_repo.head()
    proc = run_envbot(*args, env=bot_env)
    assert "already pinned" in proc.stdout
    assert env_repo.head() == head


def test_bot_identity_is_configurable(env_repo, images, bot_env):
    env = bot_env | {"ENVBOT_GIT_NAME": "release-bot", "ENVBOT_GIT_EMAIL": "release@example.com"}
    run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", str(env_repo.remote), env=env)
    assert git(env_repo.remote, "log", "-1", "--format=%an <%ae>") == "release-bot <release@example.com>"


def test_digest_reference_and_tag_at_digest(env_repo, images, bot_env):
    v3 = images["v3"]
    run_envbot("update", "dev", "--image", f"{v3.name}:v3@{v3.digest}", "--repo", str(env_repo.remote), env=bot_env)
    assert pins(env_repo.show(DEV))["image"]["digest"] == v3.digest
    run_envbot("update", "dev", "--image", f"{v3.name}@{images['v1'].digest}", "--repo", str(env_repo.remote),
               env=bot_env)
    image = pins(env_repo.show(DEV))["image"]
    assert image["digest"] == images["v1"].digest
    assert image["tag"] == images["v1"].revision[:12]   # a digest ref names the release by its source revision


def test_dry_run_prints_exact_patch_and_changes_nothing(env_repo, images, models, bot_env):
    head = env_repo.head()
    proc = run_envbot("update", "dev", "--image", images["v3"].ref, "--model", models["1"].uri, "--dry-run",
                      "--repo", str(env_repo.remote), env=bot_env)
    assert env_repo.head() == head
    assert proc.stdout.startswith(f"diff --git a/{DEV} b/{DEV}")
    assert f'+  digest: "{images["v3"].digest}"' in proc.stdout
    # The patch applies to the remote's file as is.
    patch = proc.stdout.split("\n# Pull request description")[0]
    applied = subprocess.run(["git", "apply", "--check"], input=patch, text=True, cwd=env_repo.work,
                                           capture_output=True)
    assert applied.returncode == 0, applied.stderr


def test_pull_request_landing_pushes_a_branch_with_description(env_repo, images, bot_env, source_repo):
    head = env_repo.head()
    proc = run_envbot("update", "staging", "--image", images["v3"].ref, "--override-reason", "hotfix",
                      "--repo", str(env_repo.remote), env=bot_env)
    assert env_repo.head() == head   # staging lands through a pull request: main unchanged
    branch = "envbot/update-ai-app-staging"
    assert pins(env_repo.show("environments/staging/values.yaml", branch))["image"]["digest"] == images["v3"].digest
    assert "pushed branch envbot/update-ai-app-staging" in proc.stdout
    assert "### Rendered manifests" in proc.stdout
    assert images["v3"].digest in proc.stdout
