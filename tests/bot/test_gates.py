"""bot.gates and the autoMerge policy fields: pure functions, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import gates
from bot.output import EnvbotError
from bot.policy import Environment, FreezeWindow, load_policy

NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)   # a Friday


def write_policy(tmp_path: Path, prod: str) -> Path:
    (tmp_path / "promotion.yaml").write_text(
        "environments:\n  - name: dev\n  - name: staging\n    soak: 30m\n  - name: prod\n" + prod)
    return tmp_path


def test_auto_merge_and_strategy_are_read_per_environment(tmp_path):
    policy = load_policy(write_policy(tmp_path, "    autoMerge: true\n    mergeStrategy: squash\n"))
    prod = policy.env("prod")
    assert (prod.auto_merge, prod.merge_strategy) == (True, "squash")
    assert (policy.env("staging").auto_merge, policy.env("staging").merge_strategy) == (False, "noFastForward")
    assert policy.upstream("prod").name == "staging" and policy.upstream("dev") is None


@pytest.mark.parametrize(("prod", "message"), [
    ("    autoMerge: yes please\n", "promotion.yaml:6: environments[2].autoMerge: 'yes please' is not true or false"),
    ("    mergeStrategy: rebase\n",
     "promotion.yaml:6: environments[2].mergeStrategy: 'rebase' is not one of noFastForward, squash"),
])
def test_bad_auto_merge_settings_name_file_line_and_field(tmp_path, prod, message):
    with pytest.raises(EnvbotError) as caught:
        load_policy(write_policy(tmp_path, prod))
    assert str(caught.value) == message


def test_soak_gate_says_when_it_passes_in_words_that_do_not_change_between_runs():
    src, dst = Environment("dev", "ns"), Environment("staging", "ns", soak=timedelta(minutes=30))
    landed = NOW - timedelta(minutes=10)
    first = gates.soak_gate(src, dst, "a" * 40, landed, NOW)
    later = gates.soak_gate(src, dst, "a" * 40, landed, NOW + timedelta(minutes=5))
    assert first.state == gates.PENDING and first.passes_at == landed + timedelta(minutes=30)
    assert first == later   # same text: propose posts no new status
    assert "staging requires 30m: passes at 2026-03-06 12:20 UTC" in first.description
    done = gates.soak_gate(src, dst, "a" * 40, landed, NOW + timedelta(minutes=21))
    assert done.ok and done.passes_at is None


def test_freeze_gate_says_when_the_window_opens():
    window = FreezeWindow("0 18 * * 5", timedelta(hours=64), "Europe/Amsterdam")
    prod = Environment("prod", "ns", freeze=(window,))
    frozen = gates.freeze_gate(prod, datetime(2026, 3, 6, 20, 0, tzinfo=UTC))
    assert frozen.state == gates.PENDING
    assert frozen.passes_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)   # Monday 10:00 Amsterdam
    assert "opens 2026-03-09 09:00 UTC" in frozen.description
    assert gates.freeze_gate(prod, NOW).ok


def test_check_gate_turns_an_envbot_error_into_a_failure():
    def missing() -> None:
        raise EnvbotError("image gone")

    assert gates.check_gate("artifacts", missing, "ok") == gates.Gate("artifacts", gates.FAILURE, "image gone")
    assert gates.check_gate("artifacts", lambda: None, "ok").ok


def test_actor_is_explicit_then_ci_identity_then_user(monkeypatch):
    for name in ("BUILD_REQUESTEDFOR", "GITHUB_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "alice")
    assert gates.resolve_actor(None) == "alice"
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert gates.resolve_actor(None) == "octocat"
    monkeypatch.setenv("BUILD_REQUESTEDFOR", "Jane  Doe")
    assert gates.resolve_actor(None) == "Jane Doe"
    assert gates.resolve_actor("ops-bot") == "ops-bot"


def test_write_gates_name_what_a_direct_write_skips(tmp_path):
    (tmp_path / "promotion.yaml").write_text(
        "environments:\n  - name: dev\n  - name: staging\n    soak: 30m\n  - name: prod\n    freeze:\n"
        '      - schedule: "0 18 * * 5"\n        duration: 64h\n')
    policy = load_policy(tmp_path)
    assert gates.write_gates(policy, policy.env("dev")) == []
    assert gates.write_gates(policy, policy.env("staging")) == ["order", "soak"]
    assert gates.write_gates(policy, policy.env("prod")) == ["order", "freeze"]
    assert gates.override_trailers("why", "me", ["order", "soak"]) == [
        ("Envbot-Override", "why"), ("Envbot-Bypassed-Gate", "order"), ("Envbot-Bypassed-Gate", "soak"),
        ("Envbot-Actor", "me")]
