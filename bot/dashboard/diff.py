"""The rendered manifest diff between two environments, or one environment at two revisions (envbot diff)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request

from bot.commands.diff import render_side
from bot.output import EnvbotError
from bot.render import diff_resources

blueprint = Blueprint("diff", __name__)


@blueprint.get("/diff")
def diff() -> str:
    state = current_app.extensions["envbot_state"]
    snapshot = state.snapshot()
    envs = [e.name for e in snapshot.envs]
    app_name = request.args.get("app") or snapshot.apps[0]
    if app_name not in snapshot.apps:
        abort(404, f"unknown app {app_name!r}")
    a = request.args.get("a") or (envs[-2] if len(envs) > 1 else envs[0])
    b = request.args.get("b") or envs[-1]
    diffs, error = None, ""
    try:
        app = snapshot.policy.app(app_name)
        sides = {}
        with state.mirror.lock:
            for side in (a, b):
                name, _, rev = side.partition("@")
                sha = state.mirror.resolve(rev or "HEAD")
                key = ("render", snapshot.head, app_name, name, sha)
                sides[side] = state.cache.get_or_make(
                    key, lambda side=side, sha=sha: render_side(state.mirror, snapshot.policy, app,
                                                                f"{side.partition('@')[0]}@{sha}"))
        diffs = diff_resources(sides[a], sides[b], a, b)
    except EnvbotError as exc:
        error = str(exc)
    return render_template("diff.html", snapshot=snapshot, app=app_name, a=a, b=b, diffs=diffs, error=error,
                           envs=envs), (400 if error else 200)
