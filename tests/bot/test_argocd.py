"""bot.argocd against a local server answering GET /api/v1/applications/{name} like Argo CD.

Every Application the fake serves is first validated against the Application CRD, so the
shapes the client parses are the real ones.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.argocd import ArgoCDClient, ArgoCDError, check_promotion_gate
from tests.bot.fakeservers import ArgoCDState, FakeArgoCD
from tests.environments.schemas import argocd_errors

CHART_COMMIT = "9f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6"
PINNED = "4e5d6c7b8a99887766554433221100ffeeddccbb"
OLDER = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
NEWER = "cafe0123456789abcdef0123456789abcdef0123"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def application(name: str = "ai-app-staging", *, sync: str = "Synced", health: str = "Healthy",
                env_commit: str = PINNED, history: list[tuple[str, datetime]] | None = None,
                health_since: datetime | None = None, phase: str = "Succeeded",
                health_message: str = "") -> dict[str, Any]:
    """A multi-source Application as the API server returns it (chart source + $values source)."""
    env = name.rsplit("-", 1)[-1]
    entries = history if history is not None else [(PINNED, NOW - timedelta(hours=2))]
    health_block: dict[str, Any] = {"status": health}
    if health_since:
        health_block["lastTransitionTime"] = stamp(health_since)
    if health_message:
        health_block["message"] = health_message
    sources = [
        {"repoURL": "https://dev.azure.com/contoso/ai-app/_git/ai-app", "targetRevision": "main",
         "path": "charts/ai-app",
         "helm": {"releaseName": "ai-app", "valueFiles": [f"$values/environments/{env}/values.yaml"]}},
        {"repoURL": "https://dev.azure.com/contoso/ai-app/_git/environments", "targetRevision": "main",
         "ref": "values"},
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "resourceVersion": "123456"},
        "spec": {
            "project": "ai-app",
            "sources": sources,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": f"ai-app-{env}"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": {
            "sync": {
                "status": sync,
                "revisions": [CHART_COMMIT, env_commit],
                "comparedTo": {"sources": sources,
                               "destination": {"server": "https://kubernetes.default.svc",
                                               "namespace": f"ai-app-{env}"}},
            },
            "health": health_block,
            "history": [
                {"id": i, "revisions": [CHART_COMMIT, commit], "deployedAt": stamp(at),
                 "deployStartedAt": stamp(at - timedelta(seconds=40)), "sources": sources}
                for i, (commit, at) in enumerate(entries)
            ],
            "operationState": {
                "phase": phase,
                "message": "successfully synced (all tasks run)" if phase == "Succeeded" else "",
                "startedAt": stamp(entries[-1][1] - timedelta(seconds=40)) if entries else stamp(NOW),
                "operation": {"sync": {"revisions": [CHART_COMMIT, env_commit]}},
            },
            "reconciledAt": stamp(NOW - timedelta(minutes=1)),
            "sourceTypes": ["Helm", "Helm"],
        },
    }


@pytest.fixture
def argocd() -> Iterator[FakeArgoCD]:
    fake = FakeArgoCD(ArgoCDState())
    fake.server.start()
    yield fake
    fake.server.stop()


def serve(fake: FakeArgoCD, app: dict[str, Any]) -> None:
    assert argocd_errors(app) == [], "the fake must serve what the Application CRD allows"
    fake.state.applications[app["metadata"]["name"]] = app


@pytest.fixture
def client(argocd: FakeArgoCD) -> ArgoCDClient:
    return ArgoCDClient(argocd.server.url, argocd.state.token)


def test_application_status_parses_the_api_answer(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    deployed = NOW - timedelta(hours=2)
    serve(argocd, application(history=[(OLDER, NOW - timedelta(days=1)), (PINNED, deployed)]))
    status = client.application_status("ai-app-staging")
    assert (status.name, status.sync_status, status.health_status) == ("ai-app-staging", "Synced", "Healthy")
    assert status.revisions == (CHART_COMMIT, PINNED)
    assert status.operation_phase == "Succeeded"
    assert status.reconciled_at == NOW - timedelta(minutes=1)
    assert [(d.id, d.revisions[-1], d.deployed_at) for d in status.history] == [
        (0, OLDER, NOW - timedelta(days=1)), (1, PINNED, deployed)]
    request = argocd.server.requests[-1]
    assert request.path == "/api/v1/applications/ai-app-staging"
    assert request.headers["authorization"] == f"Bearer {argocd.state.token}"


def test_gate_passes_when_synced_healthy_and_soaked(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(history=[(PINNED, NOW - timedelta(hours=2))]))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert result.ok, result.reason
    assert "2h" in result.reason


def test_gate_accepts_a_short_pinned_sha(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application())
    assert check_promotion_gate(client, "ai-app-staging", PINNED[:10], timedelta(minutes=30), NOW).ok


def test_gate_refuses_out_of_sync(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(sync="OutOfSync", env_commit=NEWER))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok
    assert "OutOfSync" in result.reason and "not Synced" in result.reason


def test_gate_refuses_degraded_with_argo_cd_message(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(health="Degraded",
                              health_message="Deployment \"ai-app\" exceeded its progress deadline"))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok
    assert "Degraded" in result.reason and "progress deadline" in result.reason


def test_gate_refuses_another_revision(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(env_commit=OLDER, history=[(OLDER, NOW - timedelta(days=3))]))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok
    assert "another revision" in result.reason and OLDER[:12] in result.reason and PINNED[:12] in result.reason


def test_gate_accepts_a_later_commit_that_did_not_touch_the_environment(
        argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    # A commit to prod's values moved staging's sync revision without a deployment.
    serve(argocd, application(env_commit=NEWER, history=[(PINNED, NOW - timedelta(hours=3))]))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert result.ok, result.reason


def test_gate_refuses_while_soaking_and_says_how_long_is_left(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(history=[(PINNED, NOW - timedelta(minutes=12))]))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok
    assert "12m of 30m" in result.reason and "18m left" in result.reason


def test_gate_soak_restarts_when_health_recovered_later(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    # Deployed a day ago, but Degraded until 10 minutes ago: only 10 minutes count.
    serve(argocd, application(history=[(PINNED, NOW - timedelta(days=1))],
                              health_since=NOW - timedelta(minutes=10)))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(hours=1), NOW)
    assert not result.ok
    assert "10m of 1h" in result.reason and "50m left" in result.reason


def test_gate_refuses_during_a_running_sync(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(phase="Running"))
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(0), NOW)
    assert not result.ok and "running" in result.reason


def test_gate_refuses_when_the_post_sync_smoke_check_failed(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    app = application(phase="Failed")
    app["status"]["operationState"]["message"] = ("one or more synchronization tasks completed unsuccessfully "
                                                  "(PostSync hook Job/ai-app-smoke-check failed)")
    serve(argocd, app)
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(0), NOW)
    assert not result.ok and "the last sync failed" in result.reason and "smoke-check" in result.reason


def test_gate_without_soak_needs_no_history(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    serve(argocd, application(history=[]))
    assert check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(0), NOW).ok
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok and "no deployment history" in result.reason


def test_gate_refuses_unknown_application(argocd: FakeArgoCD, client: ArgoCDClient) -> None:
    result = check_promotion_gate(client, "ai-app-qa", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok
    assert "no Application 'ai-app-qa'" in result.reason and "not found" in result.reason
    with pytest.raises(ArgoCDError) as raised:
        client.application_status("ai-app-qa")
    assert raised.value.status == 404


def test_gate_refuses_when_the_token_is_rejected(argocd: FakeArgoCD) -> None:
    serve(argocd, application())
    client = ArgoCDClient(argocd.server.url, "stale-token")
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok
    assert "HTTP 401" in result.reason and "ARGOCD_AUTH_TOKEN" in result.reason


def test_gate_refuses_when_the_server_is_unreachable() -> None:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ArgoCDClient(f"http://127.0.0.1:{port}", "t")
    result = check_promotion_gate(client, "ai-app-staging", PINNED, timedelta(minutes=30), NOW)
    assert not result.ok and "unreachable" in result.reason


def test_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN", "ARGOCD_INSECURE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert ArgoCDClient.from_env() is None

    monkeypatch.setenv("ARGOCD_SERVER", "argocd.contoso.example")
    with pytest.raises(ArgoCDError, match="ARGOCD_AUTH_TOKEN"):
        ArgoCDClient.from_env()

    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "tok")
    client = ArgoCDClient.from_env()
    assert client is not None
    assert (client.server_url, client.session.verify) == ("https://argocd.contoso.example", True)

    ca = tmp_path / "ca.pem"
    monkeypatch.setenv("ARGOCD_SERVER", "https://argocd.internal:8443/")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    client = ArgoCDClient.from_env()
    assert client is not None
    assert (client.server_url, client.session.verify) == ("https://argocd.internal:8443", str(ca))

    monkeypatch.setenv("ARGOCD_INSECURE", "true")
    client = ArgoCDClient.from_env()
    assert client is not None and client.session.verify is False


def test_from_env_client_talks_to_the_server(argocd: FakeArgoCD, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(argocd, application("ai-app-dev"))
    monkeypatch.setenv("ARGOCD_SERVER", argocd.server.url)
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", argocd.state.token)
    client = ArgoCDClient.from_env()
    assert client is not None
    assert client.application_status("ai-app-dev").health_status == "Healthy"
