"""Bad input: a clear `envbot: error:` naming what and where, a non-zero exit, no commit, no push."""

from __future__ import annotations

import subprocess

import pytest

from tests.bot.envrepo import git, run_envbot

pytestmark = pytest.mark.docker


def refuses(env_repo, bot_env, *args: str) -> str:
    heads = git(env_repo.remote, "for-each-ref", "--format=%(refname) %(objectname)")
    proc = run_envbot(*args, "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert git(env_repo.remote, "for-each-ref", "--format=%(refname) %(objectname)") == heads
    return proc.stderr


def test_unknown_environment_and_app(env_repo, images, bot_env):
    err = refuses(env_repo, bot_env, "update", "qa", "--image", images["v1"].ref)
    assert "unknown environment 'qa' (promotion.yaml defines: dev, staging, prod)" in err
    err = refuses(env_repo, bot_env, "update", "dev", "--image", images["v1"].ref, "--app", "chatbot")
    assert "unknown app 'chatbot' (promotion.yaml defines: ai-app)" in err


def test_malformed_values_yaml_names_file_and_line(env_repo, images, bot_env):
    env_repo.pull()
    path = env_repo.work / "environments" / "dev" / "values.yaml"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(4, "  broken: [unclosed\n")
    path.write_text("".join(lines))
    env_repo.commit_as_human("break dev")
    err = refuses(env_repo, bot_env, "update", "dev", "--image", images["v1"].ref)
    assert "environments/dev/values.yaml:5: malformed YAML" in err


def test_malformed_policy_names_line(env_repo, images, bot_env):
    env_repo.pull()
    policy = env_repo.work / "environments" / "promotion.yaml"
    policy.write_text(policy.read_text().replace("landing: pull-request", "landing: merge-please", 1))
    env_repo.commit_as_human("typo")
    err = refuses(env_repo, bot_env, "update", "dev", "--image", images["v1"].ref)
    assert ("environments/promotion.yaml:13: environments[1].landing: 'merge-please' is not one of push, "
            "pull-request") in err


def test_image_not_in_registry(env_repo, images, bot_env):
    name = images["v1"].name
    err = refuses(env_repo, bot_env, "update", "dev", "--image", f"{name}:no-such-tag")
    assert f"{name}:no-such-tag is not in the registry" in err
    missing = "sha256:" + "0" * 64
    err = refuses(env_repo, bot_env, "update", "dev", "--image", f"{name}@{missing}")
    assert f"{name}@{missing} is not in the registry" in err


def test_tag_and_digest_that_disagree(env_repo, images, bot_env):
    ref = f"{images['v1'].name}:v1@{images['v2'].digest}"
    err = refuses(env_repo, bot_env, "update", "dev", "--image", ref)
    assert f"tag v1 points at {images['v1'].digest}, not {images['v2'].digest}" in err


def test_missing_model(env_repo, images, models, bot_env):
    uri = models["1"].uri.replace("/1/model.onnx", "/99/model.onnx")
    err = refuses(env_repo, bot_env, "update", "dev", "--image", images["v1"].ref, "--model", uri)
    assert f"model {uri}:" in err


def test_unreachable_remote(tmp_path, images, bot_env):
    proc = run_envbot("update", "dev", "--image", images["v1"].ref, "--repo", "https://127.0.0.1:9/envs.git",
                      env=bot_env, check=False)
    assert "cannot reach the environments repo https://127.0.0.1:9/envs.git" in proc.stderr
    proc = run_envbot("status", "--repo", str(tmp_path / "nowhere"), env=bot_env, check=False)
    assert "does not exist" in proc.stderr


def test_verify_reports_a_model_digest_mismatch(env_repo, models, bot_env):
    env_repo.pull()
    path = env_repo.work / "environments" / "dev" / "values.yaml"
    path.write_text(path.read_text().replace(models["2"].sha256, models["1"].sha256))
    env_repo.commit_as_human("wrong digest")
    proc = run_envbot("verify", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert f"the store has sha256 {models['2'].sha256}, the pin says {models['1'].sha256}" in proc.stdout
    assert "1 pin(s) failed verification" in proc.stderr


def test_tag_moved_between_resolve_and_commit(env_repo, images, bot_env, monkeypatch, capsys):
    """The tag is re-pushed to another image while envbot edits: the re-check before commit refuses."""
    from bot import main
    from bot.steps import edit_pins

    name = f"{images['v1'].name}"
    subprocess.run(["docker", "tag", images["v1"].ref, f"{name}:moving"], check=True)
    subprocess.run(["docker", "push", "-q", f"{name}:moving"], check=True, capture_output=True)
    real_edit = edit_pins.run

    def edit_then_move_tag(promotion, outcome):
        real_edit(promotion, outcome)
        subprocess.run(["docker", "tag", images["v2"].ref, f"{name}:moving"], check=True)
        subprocess.run(["docker", "push", "-q", f"{name}:moving"], check=True, capture_output=True)

    monkeypatch.setattr(edit_pins, "run", edit_then_move_tag)
    for key, value in bot_env.items():
        monkeypatch.setenv(key, value)
    head = env_repo.head()
    assert main.main(["update", "dev", "--image", f"{name}:moving", "--repo", str(env_repo.remote)]) == 3  # conflict
    err = capsys.readouterr().err
    assert f"tag {name}:moving moved from {images['v1'].digest} to {images['v2'].digest}" in err
    assert env_repo.head() == head
