"""bot.sourcetimes: clones named by image labels get no credentials meant for every host."""

from __future__ import annotations

import pytest

from bot.sourcetimes import clone_env


def test_unscoped_extra_headers_are_not_sent_to_label_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [("http.extraheader", "AUTHORIZATION: bearer ci-token"),
               ("http.https://dev.azure.com/.extraheader", "AUTHORIZATION: bearer scoped"),
               ("core.autocrlf", "false"),
               ("HTTP.ExtraHeader", "AUTHORIZATION: basic other")]
    monkeypatch.setenv("GIT_CONFIG_COUNT", str(len(entries)))
    for index, (key, value) in enumerate(entries):
        monkeypatch.setenv(f"GIT_CONFIG_KEY_{index}", key)
        monkeypatch.setenv(f"GIT_CONFIG_VALUE_{index}", value)
    env = clone_env()
    kept = [(env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"]) for i in range(int(env["GIT_CONFIG_COUNT"]))]
    assert kept == [entries[1], entries[2]]
    assert "GIT_CONFIG_KEY_2" not in env and "GIT_CONFIG_KEY_3" not in env
    assert env["GIT_TERMINAL_PROMPT"] == "0"
