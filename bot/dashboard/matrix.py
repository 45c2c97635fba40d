"""The release matrix: apps x environments, what runs where, and what is pending behind which gate."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, url_for

blueprint = Blueprint("matrix", __name__)


@blueprint.get("/")
def index() -> str:
    state = current_app.extensions["envbot_state"]
    snapshot = state.snapshot()
    now = datetime.now(UTC)
    pending = {app: snapshot.pending(app, now) for app in snapshot.apps}
    # url_for once per environment, not per cell: it is most of a 600-cell page's time.
    env_urls = {env.name: url_for("history.environment", env=env.name) for env in snapshot.envs}
    return render_template("matrix.html", snapshot=snapshot, pending=pending, now=now, env_urls=env_urls,
                           diff_url=url_for("diff.diff"))
