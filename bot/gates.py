"""Promotion gates, evaluated once and shared by `promote` (refuse unless overridden), `propose`
(pull request statuses, auto-merge) and `update` (refused for a gated environment unless overridden).

A gate is one named check with a state in GitHub's commit-status vocabulary (success, pending,
failure, error) and, when it will pass by itself (soak, freeze), the moment it does. Descriptions
name absolute times, not "N minutes left", so re-evaluating an unchanged gate gives the same text
and propose posts no new status.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.output import EnvbotError
from bot.policy import App, Environment, Policy, format_duration

SUCCESS, PENDING, FAILURE, ERROR = "success", "pending", "failure", "error"
STATES = (SUCCESS, PENDING, FAILURE, ERROR)
# What --override-reason bypasses, per verb; the help texts are built from these names.
ORDER, SOAK, ARGOCD, FREEZE, ARTIFACTS, CHART = "order", "soak", "argocd", "freeze", "artifacts", "chart"
MODEL = "model"      # signature and metric rules of bot.modelgates
# Environment variables naming who started a CI run: Azure Pipelines (Build.RequestedFor), GitHub Actions.
CI_ACTOR_VARIABLES = ("BUILD_REQUESTEDFOR", "GITHUB_ACTOR")


@dataclass(frozen=True)
class Gate:
    name: str
    state: str
    description: str
    passes_at: datetime | None = None      # when a pending gate passes by itself (soak end, freeze end)

    @property
    def ok(self) -> bool:
        return self.state == SUCCESS

    @property
    def label(self) -> str:
        return "argo cd" if self.name == ARGOCD else self.name

    def as_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "state": self.state, "description": self.description,
                "passes_at": self.passes_at.isoformat() if self.passes_at else None}


def _short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def soak_gate(src: Environment, dst: Environment, origin_sha: str, landed: datetime, now: datetime) -> Gate:
    if not dst.soak:
        return Gate(SOAK, SUCCESS, f"{dst.name} requires no soak time")
    age = now - landed
    passes_at = landed + dst.soak
    if age < dst.soak:
        return Gate(SOAK, PENDING,
                    f"the release landed in {src.name} at {_short_time(landed)} (commit {origin_sha[:12]}); "
                    f"{dst.name} requires {format_duration(dst.soak)}: passes at {_short_time(passes_at)}", passes_at)
    return Gate(SOAK, SUCCESS, f"ran {format_duration(dst.soak)} in {src.name} (since {_short_time(landed)})")


def argocd_gate(app: App, src: Environment, dst: Environment, origin_sha: str, now: datetime) -> Gate | None:
    """Argo CD runs the release Synced and Healthy in SRC for DST's soak; None when ARGOCD_SERVER is unset."""
    from bot.argocd import ArgoCDClient, check_promotion_gate

    client = ArgoCDClient.from_env()
    if client is None:
        return None
    result = check_promotion_gate(client, app.application(src.name), origin_sha, dst.soak, now)
    return Gate(ARGOCD, SUCCESS if result.ok else PENDING, result.reason)


def freeze_gate(dst: Environment, now: datetime) -> Gate:
    freeze = dst.active_freeze(now)
    if freeze is None:
        return Gate(FREEZE, SUCCESS, f"{dst.name} is not frozen" if dst.freeze else f"{dst.name} has no freeze window")
    window, start = freeze
    opens = start + window.duration
    return Gate(FREEZE, PENDING,
                f"{dst.name} is frozen by window '{window.schedule}' ({window.timezone}) from {start.isoformat()} "
                f"for {format_duration(window.duration)}; opens {_short_time(opens)}", opens)


def check_gate(name: str, check: Callable[[], None], ok: str) -> Gate:
    """A gate from a check that raises EnvbotError when it fails (the image is gone, the chart does not render)."""
    try:
        check()
    except EnvbotError as exc:
        return Gate(name, FAILURE, str(exc))
    return Gate(name, SUCCESS, ok)


def promotion_gates(app: App, src: Environment, dst: Environment, origin_sha: str, landed: datetime,
                    now: datetime) -> list[Gate]:
    """The time and health gates of SRC -> DST: soak, Argo CD (when configured) and freeze."""
    gates = [soak_gate(src, dst, origin_sha, landed, now)]
    argocd = argocd_gate(app, src, dst, origin_sha, now)
    if argocd is not None:
        gates.append(argocd)
    gates.append(freeze_gate(dst, now))
    return gates


def failures(gates: list[Gate]) -> list[str]:
    return [f"{g.label}: {g.description}" for g in gates if not g.ok]


# --- overrides -----------------------------------------------------------------------------------

def add_override_arguments(parser: argparse.ArgumentParser, bypasses: str) -> None:
    parser.add_argument("--override-reason", metavar="TEXT",
                        help=f"bypass {bypasses}; TEXT, each bypassed gate and the actor are recorded as "
                             "Envbot-Override, Envbot-Bypassed-Gate and Envbot-Actor trailers of the commit")
    parser.add_argument("--actor", help="who asked for the override (default: the CI identity from "
                                        f"{' or '.join('$' + v for v in CI_ACTOR_VARIABLES)}, else $USER)")


def override_reason(args: argparse.Namespace) -> str | None:
    if args.override_reason is None:
        return None
    reason = " ".join(args.override_reason.split())
    if not reason:
        raise EnvbotError("--override-reason needs a text saying why the gates are bypassed")
    return reason


def resolve_actor(explicit: str | None) -> str:
    for value in (explicit, *(os.environ.get(v) for v in CI_ACTOR_VARIABLES), os.environ.get("USER")):
        if value and value.strip():
            return " ".join(value.split())
    return "unknown"


def override_trailers(reason: str, actor: str, bypassed: list[str]) -> list[tuple[str, str]]:
    """Envbot-Override (why), one Envbot-Bypassed-Gate per gate, Envbot-Actor (who)."""
    return ([("Envbot-Override", reason)] + [("Envbot-Bypassed-Gate", name) for name in bypassed]
            + [("Envbot-Actor", actor)])


def write_gates(policy: Policy, env: Environment) -> list[str]:
    """The gates a direct write (`envbot update ENV`) skips: an upstream, a soak time, freeze windows."""
    names = [e.name for e in policy.environments]
    gates = []
    if names.index(env.name) > 0:
        gates.append(ORDER)
    if env.soak:
        gates.append(SOAK)
    if env.freeze:
        gates.append(FREEZE)
    return gates
