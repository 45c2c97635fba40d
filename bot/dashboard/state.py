"""What the dashboard shows, read from the environments repo and kept between requests.

A `Snapshot` is everything the pages need at one commit of the branch: the policy, every pin change
(bot.timeline), the release matrix, Argo CD's view. `RepoState` holds the newest snapshot and
refreshes it from the remote when it is older than the refresh interval: the first request waits
for the clone, later ones are served from memory while a background thread fetches and, only when
the branch moved, rebuilds. Git reads are cached by what never changes (pins by blob, rendered
diffs and metrics by commit).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.mirror import Mirror
from bot.output import EnvbotError
from bot.pins import same_release
from bot.policy import Environment, Policy, format_duration, load_policy
from bot.timeline import PinCache, PinChange, Timeline, build_timeline, tracked_paths
from bot.values import ReleasePin

log = logging.getLogger("envbot.dashboard")


@dataclass(frozen=True)
class Gate:
    """Why a pending promotion waits: soak, freeze or Argo CD; `until` when the wait ends, if known."""

    kind: str
    reason: str
    until: datetime | None = None


@dataclass
class Cell:
    """One app in one environment."""

    app: str
    env: str
    path: str
    pin: ReleasePin | None
    origin: PinChange | None
    error: str = ""
    sync: str = ""
    health: str = ""
    argocd_error: str = ""


@dataclass
class Pending:
    """SRC's release is not yet in DST: a promotion is due, held by GATES (none: it may go now)."""

    app: str
    src: str
    dst: str
    pin: ReleasePin
    gates: list[Gate]


@dataclass
class Snapshot:
    head: str
    fetched_at: datetime
    policy: Policy
    timeline: Timeline
    chart_versions: dict[str, str]                     # app -> chart version in effect
    cells: dict[tuple[str, str], Cell]                 # (app, env) -> cell
    argocd: bool = False
    # (app, src env) -> Argo CD's promotion gate for src's release (bot.argocd.check_promotion_gate).
    argocd_gates: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def apps(self) -> list[str]:
        return list(self.policy.apps)

    @property
    def envs(self) -> list[Environment]:
        return self.policy.environments

    def pending(self, app: str, now: datetime) -> list[Pending]:
        result = []
        envs = self.policy.environments
        for src, dst in itertools.pairwise(envs):
            a, b = self.cells[(app, src.name)], self.cells[(app, dst.name)]
            if a.pin is None or not a.pin.image.digest or (b.pin is not None and same_release(a.pin, b.pin)):
                continue
            gates = gates_for(a, dst, now)
            argocd = self.argocd_gates.get((app, src.name))
            if argocd is not None and not argocd.ok:
                gates.append(Gate("argocd", f"Argo CD: {argocd.reason}"))
            result.append(Pending(app, src.name, dst.name, a.pin, gates))
        return result


def gates_for(src: Cell, dst: Environment, now: datetime) -> list[Gate]:
    """The soak and freeze gates that hold SRC's release back from DST now (as `envbot promote` checks)."""
    gates = []
    if dst.soak and src.origin is not None:
        landed = datetime.fromtimestamp(src.origin.when, UTC)
        ends = landed + dst.soak
        if ends > now:
            gates.append(Gate("soak", f"soak {format_duration(dst.soak)} in {src.env}", ends))
    freeze = dst.active_freeze(now)
    if freeze is not None:
        window, start = freeze
        gates.append(Gate("freeze", f"freeze '{window.schedule}' ({window.timezone})",
                          (start + window.duration).astimezone(UTC)))
    return gates


def chart_version(policy: Policy, app_name: str) -> str:
    """The chart version in effect for APP: the pinned one of a chart repository, or the in-repo Chart.yaml's."""
    app = policy.app(app_name)
    if app.chart.version:
        return app.chart.version
    if app.chart.path:
        chart_file = policy.root / app.chart.path / "Chart.yaml"
        try:
            from bot.yamlfile import load_yaml, read_text

            doc = load_yaml(read_text(chart_file, str(chart_file)), str(chart_file), typ="safe")
            return f"{doc.get('version', '?')} (in repo)"
        except (OSError, ValueError, AttributeError, EnvbotError):
            return "in repo"
    return "latest (not pinned)"


def chart_dirs(policy: Policy, root: Path) -> list[str]:
    """The in-repo chart directories of the apps, relative to the repo root (what the diff page renders)."""
    dirs = set()
    for app in policy.apps.values():
        if app.chart.path:
            chart = (policy.root / app.chart.path).resolve()
            if chart.is_relative_to(root.resolve()):
                dirs.add(chart.relative_to(root.resolve()).as_posix())
    return sorted(dirs)


class LRU:
    """A small thread-safe cache of results that never change for their key."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = make()
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


@dataclass
class RepoState:
    """The environments repo behind the dashboard, refreshed at most every REFRESH_SECONDS."""

    repo: str | None
    branch: str | None = None
    refresh_seconds: float = 30.0
    argocd_factory: Callable[[], Any] | None = None
    mirror: Mirror | None = None
    snapshot_: Snapshot | None = None
    last_error: str = ""
    checked_at: float = 0.0
    _pins: PinCache = field(default_factory=PinCache)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refreshing: bool = False
    cache: LRU = field(default_factory=LRU)

    def snapshot(self) -> Snapshot:
        """The newest snapshot; starts a background refresh when it is stale."""
        if self.snapshot_ is None:
            with self._lock:
                if self.snapshot_ is None:
                    self._refresh()
        elif time.monotonic() - self.checked_at >= self.refresh_seconds:
            with self._lock:
                start = not self._refreshing
                self._refreshing = True
            if start:
                threading.Thread(target=self._refresh_in_background, name="envbot-dashboard-refresh",
                                 daemon=True).start()
        assert self.snapshot_ is not None
        return self.snapshot_

    def _refresh_in_background(self) -> None:
        try:
            self._refresh()
        except EnvbotError as exc:
            # Keep serving the last snapshot; the page shows why it may be old.
            self.last_error = str(exc)
            log.warning("refresh failed: %s", exc)
        finally:
            self._refreshing = False

    def _refresh(self) -> None:
        if self.mirror is None:
            self.mirror = Mirror(self.repo, self.branch)
        head = self.mirror.refresh()
        self.checked_at = time.monotonic()
        self.last_error = ""
        current = self.snapshot_
        if current is not None and current.head == head:
            current.fetched_at = datetime.now(UTC)
            self._update_argocd(current)
            return
        self.snapshot_ = self._build(head)

    def _build(self, head: str) -> Snapshot:
        assert self.mirror is not None
        with self.mirror.lock:
            policy = load_policy(self.mirror.path)
            self.mirror.include(chart_dirs(policy, self.mirror.path))
            versions = {app: chart_version(policy, app) for app in policy.apps}
        timeline = build_timeline(self.mirror.path, head, tracked_paths(policy), self._pins)
        cells = {}
        for path, (app, env) in timeline.tracked.items():
            cells[(app, env)] = Cell(app, env, path, timeline.current.get(path), timeline.origin(path),
                                     timeline.errors.get(path, ""))
        snapshot = Snapshot(head, datetime.now(UTC), policy, timeline, versions, cells)
        self._update_argocd(snapshot)
        return snapshot

    def _update_argocd(self, snapshot: Snapshot) -> None:
        from bot.argocd import ArgoCDError, check_promotion_gate

        if self.argocd_factory is None:
            return
        try:
            client = self.argocd_factory()
        except ArgoCDError as exc:
            self.last_error = str(exc)
            return
        if client is None:
            return
        snapshot.argocd = True
        for (app, env), cell in snapshot.cells.items():
            try:
                status = client.application_status(snapshot.policy.app(app).application(env))
                cell.sync, cell.health, cell.argocd_error = status.sync_status, status.health_status, ""
            except ArgoCDError as exc:
                cell.sync, cell.health, cell.argocd_error = "Unknown", "Unknown", str(exc).splitlines()[0]
        # The gate `envbot promote` applies: the source runs the release's commit, Synced and Healthy,
        # for the destination's soak time.
        gates = {}
        envs = snapshot.policy.environments
        for app in snapshot.apps:
            for src, dst in itertools.pairwise(envs):
                cell, after = snapshot.cells[(app, src.name)], snapshot.cells[(app, dst.name)]
                if cell.origin is None or cell.pin is None or (after.pin is not None
                                                               and same_release(cell.pin, after.pin)):
                    continue
                gates[(app, src.name)] = check_promotion_gate(
                    client, snapshot.policy.app(app).application(src.name), cell.origin.sha, dst.soak,
                    datetime.now(UTC))
        snapshot.argocd_gates = gates

    def workdir(self) -> Path:
        assert self.mirror is not None
        return self.mirror.path

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
