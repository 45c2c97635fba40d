"""The delivery dashboard: a read-only Flask application over the environments repo (`envbot dashboard`).

Pages: the release matrix (/), an environment's history (/env/<env>), the rendered diff between two
environments or revisions (/diff), the DORA metrics with server-drawn SVG charts (/metrics).
Nothing is loaded from outside the application; nothing is written anywhere.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from bot.dashboard.state import RepoState

DEFAULT_REFRESH_SECONDS = 30.0
DEFAULT_METRICS_WINDOW = "30d"


@dataclass(frozen=True)
class DashboardSettings:
    repo: str | None                         # environments repo: URL, bare repo or checkout
    branch: str | None = None
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    metrics_window: str = DEFAULT_METRICS_WINDOW
    offline: bool = False                    # no registry or source-repo lookups (lead time unknown)
    argocd: bool = True                      # ask Argo CD (ARGOCD_SERVER, ARGOCD_AUTH_TOKEN) when configured


def create_app(settings: DashboardSettings) -> Flask:
    from bot.argocd import ArgoCDClient
    from bot.dashboard import diff, history, matrix, metrics
    from bot.sourcetimes import SourceTimes

    app = Flask(__name__)
    app.config["DASHBOARD"] = settings
    state = RepoState(settings.repo, settings.branch, settings.refresh_seconds,
                      argocd_factory=ArgoCDClient.from_env if settings.argocd else None)
    app.extensions["envbot_state"] = state
    # The clone lives in a temporary directory: remove it when the serving process ends.
    atexit.register(state.close)
    app.extensions["envbot_sources"] = None if settings.offline else SourceTimes()
    if app.extensions["envbot_sources"] is not None:
        atexit.register(app.extensions["envbot_sources"].close)
    for blueprint in (matrix.blueprint, history.blueprint, diff.blueprint, metrics.blueprint):
        app.register_blueprint(blueprint)

    @app.get("/healthz")
    def healthz() -> tuple[dict, int]:
        snapshot = state.snapshot()
        return {"head": snapshot.head, "fetched_at": snapshot.fetched_at.isoformat(),
                "refresh_error": state.last_error}, 200

    @app.context_processor
    def common() -> dict:
        return {"state": state, "now": datetime.now(UTC)}

    from bot.dashboard import filters

    filters.register(app)
    return app
