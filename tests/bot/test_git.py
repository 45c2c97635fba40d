"""bot.git's environment for git calls keeps what the caller configured."""

from __future__ import annotations

import os
import subprocess

import pytest

from bot.git import _SERVER_CONFIG, git_env


def test_git_env_appends_its_entries_after_the_callers(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # CI hands git a credential through GIT_CONFIG_* (no token in any file); envbot must not drop it.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.extraheader")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "AUTHORIZATION: bearer test-token")
    env = {**os.environ, **git_env()}
    listed = subprocess.run(["git", "config", "--list"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    assert "http.extraheader=AUTHORIZATION: bearer test-token" in listed
    for key, value in _SERVER_CONFIG.items():
        assert f"{key.lower()}={value}" in listed


def test_git_env_without_inherited_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    env = git_env()
    assert env["GIT_CONFIG_COUNT"] == str(len(_SERVER_CONFIG))
    assert env["GIT_TERMINAL_PROMPT"] == "0"
