"""The four DORA metrics of an environment, from its pin changes (bot.timeline) and the source commit times.

Definitions (docs/metrics.md explains them with examples):

- a *deployment* is a pin change of an app in the environment (bot.timeline.PinChange): an envbot
  update, promotion or rollback, a `git revert` or a hand edit of the pin; it happened when its
  commit landed on the branch (committer time of the first-parent commit: the merge of a PR);
- a *change* is a deployment that is not a rollback or a revert;
- a change *failed* when a later deployment reverted it (Envbot-Reverts trailer of `envbot rollback`,
  or "This reverts commit <sha>" of `git revert`) and that revert was not itself undone by a revert
  that stayed in place (a revert of a revert puts the change back: it did not fail);
- *deployment frequency*: deployments in the window per day (and per week);
- *lead time for changes*: for each source commit a change brought into the environment for the
  first time, from the commit's time to the deployment; median over the commits;
- *change failure rate*: failed changes / changes, over the changes deployed in the window;
- *time to restore*: for each failed change, from its deployment to the revert that undid it; median.

Everything is computed per app values file and summed per environment; nothing here reads git or
the network: the source commits come through a `SourceLookup` (bot.sourcetimes.SourceTimes).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from bot.sourcetimes import ImageSource, SourceUnknown
from bot.timeline import PinChange, Timeline
from bot.values import ImagePin

RESTORING_ACTIONS = ("rollback", "revert")
DAY = 86_400


class SourceLookup(Protocol):
    def image_source(self, app: str, image: ImagePin) -> ImageSource: ...

    def new_commits(self, source: str, revision: str, deployed_before: list[str]) -> list[tuple[str, int]]: ...


@dataclass
class Deployment:
    """One deployment in the window, with what the metrics found about it."""

    app: str
    env: str
    commit: str
    when: int
    action: str
    by: str
    image: str                       # tag (or short digest) of the deployed image
    image_digest: str
    model: str                       # name@version
    change: bool                     # not a rollback or revert
    failed: bool = False
    reverted_by: str = ""            # the revert that undid it
    restore_seconds: int | None = None
    revision: str = ""               # source revision of the image, when known
    lead_commits: int = 0            # source commits first deployed here
    lead_median_seconds: float | None = None
    lead_unknown: str = ""           # why the lead time of this deployment is unknown

    def as_dict(self) -> dict:
        data = dict(vars(self))
        data["when"] = iso(self.when)
        return data


@dataclass
class EnvironmentMetrics:
    env: str
    since: int
    until: int
    deployments: list[Deployment] = field(default_factory=list)
    lead_times: list[int] = field(default_factory=list)      # seconds, one per source commit

    @property
    def days(self) -> float:
        return max(self.until - self.since, 1) / DAY

    @property
    def changes(self) -> list[Deployment]:
        return [d for d in self.deployments if d.change]

    @property
    def failures(self) -> list[Deployment]:
        return [d for d in self.deployments if d.failed]

    def as_dict(self) -> dict:
        deployments, changes, failures = self.deployments, self.changes, self.failures
        by_action: dict[str, int] = {}
        for d in deployments:
            by_action[d.action] = by_action.get(d.action, 0) + 1
        restores = [d.restore_seconds for d in failures if d.restore_seconds is not None]
        unknown = [d for d in changes if d.lead_unknown]
        return {
            "env": self.env,
            "window": {"since": iso(self.since), "until": iso(self.until), "days": round(self.days, 3)},
            "deployment_frequency": {
                "deployments": len(deployments),
                "per_day": round(len(deployments) / self.days, 3),
                "per_week": round(len(deployments) * 7 / self.days, 3),
                "by_action": dict(sorted(by_action.items())),
                "days_with_deployments": len({(d.when - self.since) // DAY for d in deployments}),
            },
            "lead_time_for_changes": {
                "commits": len(self.lead_times),
                "median_seconds": _median(self.lead_times),
                "mean_seconds": _mean(self.lead_times),
                "changes_with_unknown_lead_time": len(unknown),
                "unknown": [{"commit": d.commit, "app": d.app, "reason": d.lead_unknown} for d in unknown],
            },
            "change_failure_rate": {
                "changes": len(changes),
                "failed": len(failures),
                "rate": round(len(failures) / len(changes), 4) if changes else None,
                "failed_changes": [{"commit": d.commit, "app": d.app, "reverted_by": d.reverted_by}
                                   for d in failures],
            },
            "time_to_restore": {
                "restores": len(restores),
                "median_seconds": _median(restores),
                "mean_seconds": _mean(restores),
            },
            "deployments": [d.as_dict() for d in deployments],
        }


def iso(when: int) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat()


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _mean(values: list[int]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def undone_changes(changes: list[PinChange]) -> dict[str, PinChange]:
    """Pin changes of one values file that a revert undid and that stayed undone: sha -> the revert.

    Newest first: whether a revert is itself undone is known before the changes it names.
    """
    position = {change.sha: index for index, change in enumerate(changes)}
    reverted_by: dict[str, list[PinChange]] = {}
    for change in changes:
        for sha in change.reverts:
            reverted_by.setdefault(sha, []).append(change)
    undone: dict[str, PinChange] = {}
    for index in range(len(changes) - 1, -1, -1):
        change = changes[index]
        effective = [revert for sha in change.ids for revert in reverted_by.get(sha, [])
                     if position[revert.sha] > index and revert.sha not in undone]
        if effective:
            undone[change.sha] = min(effective, key=lambda revert: position[revert.sha])
    return undone


def _short_image(image: ImagePin) -> str:
    return image.tag or image.digest.split(":")[-1][:12]


def environment_metrics(env: str, per_path: Iterable[list[PinChange]], since: int, until: int,
                        sources: SourceLookup | None) -> EnvironmentMetrics:
    """The metrics of ENV over [SINCE, UNTIL) from the pin changes of each of its values files."""
    result = EnvironmentMetrics(env, since, until)
    for changes in per_path:
        undone = undone_changes(changes)
        deployed_revisions: list[str] = []
        previous_unknown = ""            # why the image deployed before is unknown
        for change in changes:
            if change.pin is None:       # the values file was deleted: the app left the environment
                continue
            in_window = since <= change.when < until
            restoring = change.action in RESTORING_ACTIONS
            revision, lead, unknown = "", [], ""
            image_changed = change.previous is None or change.previous.image.digest != change.pin.image.digest
            if sources is None:
                unknown = "source lookups are off (--offline)"
            elif image_changed:
                try:
                    found = sources.image_source(change.app, change.pin.image)
                except SourceUnknown as exc:
                    unknown = previous_unknown = str(exc)
                else:
                    revision = found.revision
                    if in_window and not restoring:
                        if previous_unknown:
                            # Which commits are new here depends on what ran before.
                            unknown = f"the image deployed before it is unknown: {previous_unknown}"
                        else:
                            try:
                                new = sources.new_commits(found.source, revision, deployed_revisions)
                                lead = [max(0, change.when - committed) for _, committed in new]
                            except SourceUnknown as exc:
                                unknown = str(exc)
                    deployed_revisions.append(revision)
                    previous_unknown = ""
            if not in_window:
                continue
            failed_by = undone.get(change.sha) if not restoring else None
            deployment = Deployment(
                app=change.app, env=env, commit=change.sha, when=change.when, action=change.action,
                by=change.by, image=_short_image(change.pin.image), image_digest=change.pin.image.digest,
                model=f"{change.pin.model.name}@{change.pin.model.version}" if change.pin.model.name else "",
                change=not restoring, failed=failed_by is not None,
                reverted_by=failed_by.sha if failed_by else "",
                restore_seconds=(failed_by.when - change.when) if failed_by else None,
                revision=revision,
            )
            if deployment.change:
                if not image_changed:
                    deployment.lead_unknown = ""          # a model or settings release: no source commits
                elif unknown:
                    deployment.lead_unknown = unknown
                else:
                    deployment.lead_commits = len(lead)
                    deployment.lead_median_seconds = _median(lead)
                    result.lead_times.extend(lead)
            result.deployments.append(deployment)
    result.deployments.sort(key=lambda d: (d.when, d.app))
    return result


def metrics_report(timeline: Timeline, envs: list[str], since: int, until: int,
                   sources: SourceLookup | None, apps: list[str] | None = None) -> dict:
    """The metrics of each of ENVS (in promotion order) over the window, for APPS (default: all tracked)."""
    result = []
    for env in envs:
        per_path = [timeline.changes_of(path) for path, (app, e) in timeline.tracked.items()
                    if e == env and (apps is None or app in apps)]
        result.append(environment_metrics(env, per_path, since, until, sources).as_dict())
    return {"head": timeline.head, "apps": apps if apps is not None else sorted({a for a, _ in
            timeline.tracked.values()}), "since": iso(since), "until": iso(until), "environments": result}
