"""The dashboard's Flask app in-process: Argo CD columns and gates, bad input, read-only routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.dashboard import DashboardSettings, create_app
from tests.bot.envrepo import git
from tests.bot.fakeservers import ArgoCDState, FakeArgoCD
from tests.bot.histories import History, pin
from tests.bot.test_argocd import application


@pytest.fixture
def argocd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgoCD]:
    fake = FakeArgoCD(ArgoCDState())
    fake.server.start()
    monkeypatch.setenv("ARGOCD_SERVER", fake.server.url)
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", fake.state.token)
    yield fake
    fake.server.stop()


@pytest.fixture
def history(tmp_path: Path) -> tuple[History, dict[str, str]]:
    h = History(tmp_path)
    pins = {"dev": pin("a"), "staging": pin("a"), "prod": pin("a")}
    shas = {"init": h.init(pins, "2025-12-01T00:00:00Z")}
    shas["dev"] = h.update("dev", pin("b"), "2026-01-02T00:00:00Z")
    shas["staging"] = h.update("staging", pin("c"), "2026-01-03T00:00:00Z")
    return h, shas


def test_argocd_state_and_gates(argocd: FakeArgoCD, history) -> None:
    h, shas = history
    now = datetime.now(UTC)
    apps = argocd.state.applications
    apps["ai-app-dev"] = (application("ai-app-dev", env_commit=shas["dev"],
                                     history=[(shas["dev"], now - timedelta(hours=2))]))
    apps["ai-app-staging"] = application("ai-app-staging", health="Degraded", health_message="1/3 pods ready",
                                         env_commit=shas["staging"],
                                         history=[(shas["staging"], now - timedelta(days=2))])
    app = create_app(DashboardSettings(repo=str(h.remote), offline=True))
    page = app.test_client().get("/").get_data(as_text=True)
    assert "Synced · Healthy" in page and "Synced · Degraded" in page
    # prod has no Application: the cell says so instead of failing the page.
    assert "ai-app-prod" in page and "Unknown · Unknown" in page
    dev_to_staging = page.split('data-src="dev" data-dst="staging"')[1].split("</div>\n          </div>")[0]
    assert "ready to promote" in dev_to_staging
    staging_to_prod = page.split('data-src="staging" data-dst="prod"')[1]
    assert "Argo CD: ai-app-staging is Degraded, not Healthy: 1/3 pods ready" in staging_to_prod


def test_bad_input_and_read_only(history, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGOCD_SERVER", raising=False)
    h, _ = history
    client = create_app(DashboardSettings(repo=str(h.remote), offline=True)).test_client()
    assert client.get("/env/qa").status_code == 404
    assert client.get("/env/prod?app=nope").status_code == 404
    assert client.get("/env/prod?page=x").status_code == 400
    assert client.get("/metrics?since=yesterday").status_code == 400
    assert client.get("/metrics?since=99999999d").status_code == 400
    for rev in ("--output=/tmp/x", "HEAD:environments", "a b"):
        response = client.get(f"/diff?app=ai-app&a=prod@{rev}&b=prod")
        assert response.status_code == 400
        assert "is not a revision" in response.get_data(as_text=True)
    assert "unknown revision" in client.get("/diff?app=ai-app&a=prod@nosuchref&b=prod").get_data(as_text=True)
    for method in ("post", "put", "delete"):
        assert getattr(client, method)("/").status_code == 405
    health = client.get("/healthz").get_json()
    assert health["head"] == git(h.remote, "rev-parse", "main") and health["refresh_error"] == ""
