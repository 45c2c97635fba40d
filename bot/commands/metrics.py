"""envbot metrics: the four DORA metrics per environment over a window, from the environments repo's history.

Deployment frequency, lead time for changes, change failure rate and time to restore, computed from
envbot's commit trailers (update, promote, rollback), `git revert`s and hand edits of the pins, and
the source commit times behind each image (its org.opencontainers.image.revision label, read from the
registry, and its source repository). Definitions and edge cases: docs/metrics.md.
`envbot metrics --since 30d`, `envbot metrics --env prod --since 2026-01-01 --json`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bot.dora import metrics_report
from bot.mirror import Mirror
from bot.output import EnvbotError, emit, table
from bot.policy import Policy, load_policy, parse_duration
from bot.sourcetimes import SourceTimes
from bot.timeline import build_timeline, tracked_paths

DEFAULT_WINDOW = "30d"


JSON_SCHEMA = "metrics"   # bot/schemas/metrics.json: the shape of `--json` output

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser._option_string_actions["--app"].help = "only this app of promotion.yaml (default: all apps)"
    parser.add_argument("--env", help="only this environment (default: all, in promotion order)")
    parser.add_argument("--since", default=DEFAULT_WINDOW, metavar="WHEN",
                        help=f"start of the window: a duration back from --until (30d, 12h) or an ISO date/time "
                             f"(default {DEFAULT_WINDOW})")
    parser.add_argument("--until", metavar="WHEN", help="end of the window: an ISO date/time (default: now)")
    parser.add_argument("--offline", action="store_true",
                        help="ask no registry or source repo: lead time is reported unknown")


def parse_when(text: str, field: str) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EnvbotError(f"{field} {text!r}: expected an ISO date (2026-01-31), date-time "
                          f"(2026-01-31T12:00:00Z) or, for --since, a duration (30d, 12h)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def window(since: str, until: str | None, now: datetime | None = None) -> tuple[int, int]:
    end = parse_when(until, "--until") if until else (now or datetime.now(UTC))
    try:
        start = end - parse_duration(since)
    except ValueError:
        start = parse_when(since, "--since")
    except OverflowError:
        raise EnvbotError(f"--since {since}: reaches before year 1") from None
    if start >= end:
        raise EnvbotError(f"--since {since} is not before --until {end.isoformat()}")
    return int(start.timestamp()), int(end.timestamp())


def format_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    seconds = int(value)
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f}d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds}s"


def format_report(report: dict) -> str:
    rows = []
    for env in report["environments"]:
        freq, lead = env["deployment_frequency"], env["lead_time_for_changes"]
        cfr, ttr = env["change_failure_rate"], env["time_to_restore"]
        rate = "-" if cfr["rate"] is None else f"{cfr['rate'] * 100:.0f}% ({cfr['failed']}/{cfr['changes']})"
        unknown_count = lead["changes_with_unknown_lead_time"]
        unknown = f" ({unknown_count} unknown)" if unknown_count else ""
        rows.append([env["env"], str(freq["deployments"]), f"{freq['per_week']:.2f}",
                     f"{format_seconds(lead['median_seconds'])} over {lead['commits']} commits{unknown}",
                     rate, f"{format_seconds(ttr['median_seconds'])} ({ttr['restores']})"])
    apps = ", ".join(report["apps"])
    text = f"apps {apps}; {report['since'][:16]} .. {report['until'][:16]} UTC\n"
    text += table(["ENV", "DEPLOYS", "PER WEEK", "LEAD TIME (MEDIAN)", "CHANGE FAILURE RATE",
                   "TIME TO RESTORE (MEDIAN)"], rows)
    reasons = {u["reason"] for env in report["environments"] for u in env["lead_time_for_changes"]["unknown"]}
    if reasons:
        text += "\nLead time unknown for some releases:\n" + "".join(f"  - {r}\n" for r in sorted(reasons))
    return text


def default_sources(policy: Policy) -> dict[str, str]:
    """App -> promotion.yaml's `source`, for images without an org.opencontainers.image.source label."""
    return {app.name: app.source or "" for app in policy.apps.values()}


def compute(mirror: Mirror, args_app: str | None, args_env: str | None, since: int, until: int,
            offline: bool) -> dict:
    policy = load_policy(mirror.path)
    apps = [policy.app(args_app).name] if args_app else None
    envs = [policy.env(args_env).name] if args_env else [e.name for e in policy.environments]
    timeline = build_timeline(mirror.path, "HEAD", tracked_paths(policy, apps))
    sources = None if offline else SourceTimes(default_source=default_sources(policy))
    try:
        return metrics_report(timeline, envs, since, until, sources, apps)
    finally:
        if sources is not None:
            sources.close()


def run(args: argparse.Namespace) -> int:
    since, until = window(args.since, args.until)
    with Mirror(args.repo, args.branch) as mirror:
        report = compute(mirror, args.app, args.env, since, until, args.offline)
    emit(args.json, report, format_report(report))
    return 0
