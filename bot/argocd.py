"""Argo CD REST client and the promotion health gate.

Before envbot promotes a release out of an environment, the environment's Application must run
it, Synced and Healthy, for the soak time of the next environment (promotion.yaml `soak`).

Gate semantics (check_promotion_gate):
- the Application is Synced, Healthy, and no sync operation is running;
- it runs the pinned environments-repo commit: status.sync.revision (single source) or
  status.sync.revisions (multi-source: the commit of the `$values` source is one of them) is
  that commit, or the last deployment in status.history is. The second case covers a later
  commit that did not change this environment: Argo CD moves sync.revision without deploying;
- soak start = the later of the last deployment's deployedAt (status.history, when the pods were
  last changed) and status.health.lastTransitionTime (when it last became Healthy; absent on older
  Argo CD). A release that went Degraded and recovered soaks again from its recovery;
- elapsed = now - soak start must be >= soak.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from bot.output import EnvbotError
from bot.policy import format_duration

TIMEOUT_SECONDS = 15


class ArgoCDError(EnvbotError):
    """Argo CD could not be asked (unreachable, refused, unknown Application, not configured)."""

    kind = "unreachable"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Deployment:
    """One entry of status.history: a sync that changed the live state."""

    id: int
    revisions: tuple[str, ...]
    deployed_at: datetime | None


@dataclass(frozen=True)
class AppStatus:
    name: str
    sync_status: str                 # Synced | OutOfSync | Unknown
    health_status: str               # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    revision: str                    # status.sync.revision ("" for multi-source apps)
    revisions: tuple[str, ...]       # status.sync.revisions (multi-source), else (revision,)
    operation_phase: str             # status.operationState.phase ("" when no operation yet)
    reconciled_at: datetime | None
    history: tuple[Deployment, ...]  # oldest first
    health_message: str = ""
    health_since: datetime | None = None  # status.health.lastTransitionTime
    operation_message: str = field(default="")


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _revisions(entry: dict[str, Any]) -> tuple[str, ...]:
    many = entry.get("revisions") or []
    if many:
        return tuple(str(r) for r in many)
    one = entry.get("revision")
    return (str(one),) if one else ()


def parse_application(app: dict[str, Any]) -> AppStatus:
    """AppStatus from an Application resource (the JSON of GET /api/v1/applications/{name})."""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    operation = status.get("operationState") or {}
    history = tuple(
        Deployment(id=int(h.get("id", 0)), revisions=_revisions(h), deployed_at=_parse_time(h.get("deployedAt")))
        for h in status.get("history") or []
    )
    return AppStatus(
        name=(app.get("metadata") or {}).get("name", ""),
        sync_status=sync.get("status") or "Unknown",
        health_status=health.get("status") or "Unknown",
        revision=sync.get("revision") or "",
        revisions=_revisions(sync),
        operation_phase=operation.get("phase") or "",
        reconciled_at=_parse_time(status.get("reconciledAt")),
        history=tuple(sorted(history, key=lambda d: d.id)),
        health_message=health.get("message") or "",
        health_since=_parse_time(health.get("lastTransitionTime")),
        operation_message=operation.get("message") or "",
    )


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


class ArgoCDClient:
    """Reads Applications through the Argo CD API server with a bearer token."""

    def __init__(self, server_url: str, token: str, verify: bool | str = True) -> None:
        self.server_url = server_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self.session.verify = verify

    @classmethod
    def from_env(cls) -> ArgoCDClient | None:
        """Client from ARGOCD_SERVER / ARGOCD_AUTH_TOKEN (the argocd CLI's variables); None when unset.

        ARGOCD_SERVER is a URL or a host[:port] (then https). ARGOCD_INSECURE=true skips TLS
        verification; REQUESTS_CA_BUNDLE names a CA file to trust (a private CA).
        """
        server = os.environ.get("ARGOCD_SERVER", "").strip()
        if not server:
            return None
        token = os.environ.get("ARGOCD_AUTH_TOKEN", "").strip()
        if not token:
            raise ArgoCDError(
                f"ARGOCD_SERVER is set ({server}) but ARGOCD_AUTH_TOKEN is not: create a token with "
                "`argocd proj role create-token ai-app envbot-gate` and export it as ARGOCD_AUTH_TOKEN"
            )
        url = server if "://" in server else f"https://{server}"
        verify: bool | str = True
        if _truthy(os.environ.get("ARGOCD_INSECURE", "")):
            verify = False
        elif os.environ.get("REQUESTS_CA_BUNDLE"):
            verify = os.environ["REQUESTS_CA_BUNDLE"]
        return cls(url, token, verify)

    def get_application(self, name: str) -> dict[str, Any]:
        url = f"{self.server_url}/api/v1/applications/{quote(name, safe='')}"
        try:
            response = self.session.get(url, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise ArgoCDError(f"Argo CD server {self.server_url} is unreachable: {exc}") from exc
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError as exc:
                raise ArgoCDError(f"Argo CD GET {url}: the answer is not JSON: {response.text[:120]!r}") from exc
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text.strip() or response.reason
        if response.status_code == 404:
            raise ArgoCDError(f"Argo CD has no Application {name!r}: {message}", status=404)
        if response.status_code in (401, 403):
            raise ArgoCDError(
                f"Argo CD refused to show Application {name!r} (HTTP {response.status_code}: {message}); "
                "check ARGOCD_AUTH_TOKEN and that its role may get applications in the project "
                "(Argo CD also answers 403 for an Application that does not exist)",
                status=response.status_code,
            )
        raise ArgoCDError(f"Argo CD GET {url}: HTTP {response.status_code}: {message}",
                          status=response.status_code)

    def application_status(self, name: str) -> AppStatus:
        return parse_application(self.get_application(name))


def _matches(pinned: str, revision: str) -> bool:
    # Full SHAs from Argo CD; a pinned short SHA (>= 7 hex digits) matches its prefix.
    return bool(revision) and len(pinned) >= 7 and revision.startswith(pinned)


def check_promotion_gate(client: ArgoCDClient, application: str, revision: str, soak: timedelta,
                         now: datetime) -> GateResult:
    """Whether `application` has run environments-repo commit `revision` Synced and Healthy for `soak`."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        app = client.application_status(application)
    except ArgoCDError as exc:
        return GateResult(False, f"cannot check {application}: {exc}")
    short = revision[:12]
    if app.operation_phase in ("Running", "Terminating"):
        return GateResult(False, f"{application}: a sync operation is {app.operation_phase.lower()}")
    # A failed PostSync hook (the chart's smoke check: the model did not answer) fails the operation
    # while the resources may look Synced and Healthy: such a release is not promotable.
    if app.operation_phase in ("Failed", "Error"):
        detail = f": {app.operation_message}" if app.operation_message else ""
        return GateResult(False, f"{application}: the last sync {app.operation_phase.lower()}{detail}")
    if app.sync_status != "Synced":
        at = ", ".join(r[:12] for r in app.revisions) or "unknown revision"
        return GateResult(False, f"{application} is {app.sync_status} (target {at}), not Synced at {short}")
    if app.health_status != "Healthy":
        detail = f": {app.health_message}" if app.health_message else ""
        return GateResult(False, f"{application} is {app.health_status}, not Healthy{detail}")
    last = app.history[-1] if app.history else None
    runs_pinned = any(_matches(revision, r) for r in app.revisions) or (
        last is not None and any(_matches(revision, r) for r in last.revisions)
    )
    if not runs_pinned:
        deployed = ", ".join(r[:12] for r in (last.revisions if last else app.revisions)) or "nothing"
        return GateResult(False, f"{application} runs another revision ({deployed}), not {short}")
    starts = [t for t in (last.deployed_at if last else None, app.health_since) if t is not None]
    if soak <= timedelta(0):
        return GateResult(True, f"{application} runs {short} Synced and Healthy (no soak time required)")
    if not starts:
        return GateResult(False, f"{application} has no deployment history to measure the soak time from")
    since = max(starts)
    elapsed = now - since
    if elapsed < soak:
        return GateResult(
            False,
            f"{application} has run {short} Healthy for {format_duration(elapsed)} of {format_duration(soak)}: "
            f"{format_duration(soak - elapsed)} left (since {since.isoformat()})",
        )
    return GateResult(True, f"{application} has run {short} Synced and Healthy for {format_duration(elapsed)} "
                            f"(soak {format_duration(soak)})")
