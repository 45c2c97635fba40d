"""An environment's history: every pin change of its apps, newest first, with links to each change's diff."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request

blueprint = Blueprint("history", __name__)
PAGE = 100


@blueprint.get("/env/<env>")
def environment(env: str) -> str:
    snapshot = current_app.extensions["envbot_state"].snapshot()
    if env not in [e.name for e in snapshot.envs]:
        abort(404, f"unknown environment {env!r}")
    app = request.args.get("app") or None
    if app is not None and app not in snapshot.apps:
        abort(404, f"unknown app {app!r}")
    try:
        page = max(int(request.args.get("page", "1")), 1)
    except ValueError:
        abort(400, "page must be a number")
    changes = [c for path, (a, e) in snapshot.timeline.tracked.items() if e == env and (app is None or a == app)
               for c in snapshot.timeline.changes_of(path)]
    changes.sort(key=lambda c: (c.when, c.sha), reverse=True)
    shown = changes[(page - 1) * PAGE:page * PAGE]
    return render_template("history.html", snapshot=snapshot, env=env, app=app, changes=shown, page=page,
                           more=len(changes) > page * PAGE, total=len(changes))
