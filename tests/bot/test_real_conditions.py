"""envbot under real conditions (issue 11): refused pushes, races, Windows files, JSON errors.

The fast tier: images are pushed through the registry's /v2 API (tests/fixtures/oci.py), so these
tests need the local registry, Azurite and helm, but no Docker engine.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.values import ImagePin, ModelPin, ReleasePin
from tests.bot.envrepo import REPO_ROOT, git, make_env_repo, policy_text, run_envbot

HOOK_PREAMBLE = """#!/bin/sh
# A hook runs with GIT_DIR & co. of the push it judges; a nested envbot run must not inherit them.
unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_PUSH_OPTION_COUNT
"""


def install_hook(remote: Path, name: str, body: str) -> None:
    hook = remote / "hooks" / name
    hook.write_text(HOOK_PREAMBLE + body)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def refs(remote: Path) -> str:
    return git(remote, "for-each-ref", "--format=%(refname) %(objectname)")


def json_error(proc: subprocess.CompletedProcess[str]) -> dict:
    error = json.loads(proc.stdout)
    assert set(error) >= {"error", "kind", "exit_code"} and error["exit_code"] == proc.returncode
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return error


# Finding 1: a push refused by a server-side hook is not a race.
def test_push_refused_by_a_hook_is_reported_once_without_retries(fast_repo, oci_images, bot_env, tmp_path):
    calls = tmp_path / "hook-calls"
    install_hook(fast_repo.remote, "pre-receive",
                 f'echo call >> "{calls}"\necho "main is protected: open a pull request" >&2\nexit 1\n')
    before = refs(fast_repo.remote)
    proc = run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--repo", str(fast_repo.remote), "--json",
                      env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "push-refused" and proc.returncode == 5
    assert "main is protected: open a pull request" in error["error"]
    assert "pre-receive hook declined" in error["error"]
    assert calls.read_text().count("call") == 1          # no retries
    assert refs(fast_repo.remote) == before
