"""The DORA metrics page: the figures of `envbot metrics` for a window, and charts drawn as SVG."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, render_template, request

from bot.commands.metrics import default_sources, window
from bot.dashboard import svg
from bot.dora import DAY, metrics_report
from bot.output import EnvbotError

blueprint = Blueprint("metrics", __name__)


def _charts(report: dict, since: int, until: int) -> list:
    envs = report["environments"]
    weeks = max(1, -(-(until - since) // (7 * DAY)))
    labels = [datetime.fromtimestamp(since + w * 7 * DAY, UTC).strftime("%m-%d") for w in range(weeks)]
    per_week = {}
    for env in envs:
        counts = [0] * weeks
        for d in env["deployments"]:
            when = int(datetime.fromisoformat(d["when"]).timestamp())
            counts[min((when - since) // (7 * DAY), weeks - 1)] += 1
        per_week[env["env"]] = counts
    x_labels = [(since + w * 7 * DAY, label) for w, label in enumerate(labels)]
    lead = {env["env"]: [(datetime.fromisoformat(d["when"]).timestamp(), d["lead_median_seconds"] / 3600,
                          f"{d['app']} {d['image']}: {d['lead_median_seconds'] / 3600:.1f}h over "
                          f"{d['lead_commits']} commit(s)")
                         for d in env["deployments"] if d["lead_median_seconds"] is not None] for env in envs}
    restore = {env["env"]: [(datetime.fromisoformat(d["when"]).timestamp(), d["restore_seconds"] / 3600,
                             f"{d['app']} {d['image']} restored after {d['restore_seconds'] / 3600:.1f}h")
                            for d in env["deployments"] if d["restore_seconds"] is not None] for env in envs}
    rates = {"failed changes": [100 * (env["change_failure_rate"]["rate"] or 0) for env in envs]}
    return [
        svg.bar_chart("Deployments per week", labels, per_week),
        svg.scatter_chart("Lead time for changes (median per deployment)", lead, (since, until), x_labels, "h"),
        svg.bar_chart("Change failure rate", [env["env"] for env in envs], rates, "%"),
        svg.scatter_chart("Time to restore (per failed change)", restore, (since, until), x_labels, "h"),
    ]


@blueprint.get("/metrics")
def metrics() -> str:
    state = current_app.extensions["envbot_state"]
    settings = current_app.config["DASHBOARD"]
    snapshot = state.snapshot()
    app = request.args.get("app") or None
    if app is not None and app not in snapshot.apps:
        abort(404, f"unknown app {app!r}")
    since_arg = request.args.get("since") or settings.metrics_window
    until_arg = request.args.get("until") or None
    try:
        since, until = window(since_arg, until_arg)
    except EnvbotError as exc:
        abort(400, str(exc))
    # "Until now" moves: such a report is kept for one refresh interval, a fixed window per commit.
    epoch = None if until_arg else int(time.time() // max(settings.refresh_seconds, 1))
    key = ("metrics", snapshot.head, app, since_arg, until_arg, epoch)
    envs = [e.name for e in snapshot.envs]
    sources = current_app.extensions["envbot_sources"]
    if sources is not None:
        sources.default_source = default_sources(snapshot.policy)
    report = state.cache.get_or_make(key, lambda: metrics_report(
        snapshot.timeline, envs, since, until, sources,
        [app] if app else None))
    return render_template("metrics.html", snapshot=snapshot, report=report, app=app, since=since_arg,
                           until=until_arg or "", charts=_charts(report, since, until))
