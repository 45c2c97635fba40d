"""envbot's progress notes: before each long step (clone, registry and model-store lookups, chart pull, helm
render), on stderr, only when stderr is a terminal; piped or in CI, stderr carries errors alone and stdout
is the result either way."""

from __future__ import annotations

import sys

from tests.app.test_cli import run_with_stderr_on_a_tty
from tests.bot.envrepo import run_envbot

STEPS = ("envbot: cloning the environments repo", "envbot: looking up ", "in the registry ...",
         "envbot: looking up model ", "envbot: pulling chart oci://", "envbot: rendering ")


def envbot_on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """envbot with stderr on a pseudo-terminal (what a person at a shell has); stdout stays a pipe."""
    code, stdout, terminal = run_with_stderr_on_a_tty([sys.executable, "-m", "bot.main", *args], env)
    return code, stdout, terminal.replace("\r\n", "\n")


def test_long_steps_are_announced_on_a_terminal(fast_repo, oci_images, models, bot_env, tmp_path):
    env = bot_env | {"ENVBOT_CACHE_DIR": str(tmp_path / "cache")}   # an empty cache: the chart is pulled
    args = ("update", "dev", "--image", oci_images["v3"].ref, "--model", models["1"].uri, "--dry-run",
            "--repo", str(fast_repo.remote))
    code, stdout, stderr = envbot_on_a_terminal(*args, env=env)
    assert code == 0, stderr
    for step in STEPS:
        assert step in stderr, f"no {step!r} note in:\n{stderr}"
    assert f"{oci_images['v3'].name}:v3 in the registry" in stderr
    assert "envbot: " not in stdout   # the patch alone on stdout

    piped = run_envbot(*args, env=env)
    assert piped.stdout == stdout
    for step in STEPS:
        assert step not in piped.stderr


def test_json_output_stays_clean_on_a_terminal(fast_repo, bot_env, tmp_path):
    code, stdout, stderr = envbot_on_a_terminal("status", "--json", "--repo", str(fast_repo.remote),
                                                env=bot_env | {"ENVBOT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, stderr
    assert "envbot: cloning the environments repo" in stderr
    assert stdout.lstrip().startswith("{") and "envbot:" not in stdout


def test_progress_notes_hide_credentials(fast_repo, bot_env):
    """The clone note quotes the --repo URL the way errors do: userinfo never reaches the terminal."""
    code, _, stderr = envbot_on_a_terminal("status", "--repo", "https://user:s3cret@127.0.0.1:9/envs.git",
                                           "--branch", "main", env=bot_env)
    assert code != 0
    assert "envbot: cloning the environments repo https://" in stderr
    assert "s3cret" not in stderr
    assert "envbot: error: " in stderr
