"""The release matrix: apps x environments, what runs where, and what is pending behind which gate."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template

blueprint = Blueprint("matrix", __name__)


@blueprint.get("/")
def index() -> str:
    state = current_app.extensions["envbot_state"]
    snapshot = state.snapshot()
    now = datetime.now(UTC)
    pending = {app: snapshot.pending(app, now) for app in snapshot.apps}
    return render_template("matrix.html", snapshot=snapshot, pending=pending, now=now)
