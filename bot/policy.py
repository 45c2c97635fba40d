"""promotion.yaml: the ordered environments, how each one lands, its gates, and the apps' values files."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from string import Formatter
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from bot.errors import BadInput, EnvbotError
from bot.modelgates import EvaluationSpec, ModelGatePolicy, parse_evaluation, parse_model_gates
from bot.yamlfile import load_yaml, read_text

POLICY_FILE = "promotion.yaml"
LANDINGS = ("push", "pull-request", "auto-merge")
# How `envbot propose` completes a proposal whose gates are all green (autoMerge: true): a merge commit
# (Azure Repos noFastForward, GitHub "merge") or one squashed commit (Azure Repos and GitHub "squash").
MERGE_STRATEGIES = ("noFastForward", "squash")
DEFAULT_APP = "ai-app"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """'30m', '24h', '1h30m', '2d' (the Argo CD sync-window / Go duration subset people write)."""
    match = _DURATION.match(str(text).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30m, 24h, 1h30m, 2d)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class FreezeWindow:
    schedule: str
    duration: timedelta
    timezone: str = "UTC"

    def active_at(self, now: datetime) -> datetime | None:
        """Start of the window covering NOW, or None. A window opens at each cron fire and lasts DURATION."""
        local_now = now.astimezone(ZoneInfo(self.timezone))
        # The latest fire is enough: an older window still open would also cover every later start.
        fires = croniter(self.schedule, local_now + timedelta(seconds=1))
        start = fires.get_prev(datetime)
        return start if local_now < start + self.duration else None


@dataclass(frozen=True)
class Environment:
    name: str
    namespace: str
    landing: str = "push"
    soak: timedelta = timedelta(0)
    freeze: tuple[FreezeWindow, ...] = ()
    model_gates: ModelGatePolicy = field(default_factory=ModelGatePolicy)   # signature and metric rules
    auto_merge: bool = False         # propose completes the proposal once every gate is green
    merge_strategy: str = "noFastForward"

    def active_freeze(self, now: datetime) -> tuple[FreezeWindow, datetime] | None:
        for window in self.freeze:
            start = window.active_at(now)
            if start is not None:
                return window, start
        return None


@dataclass(frozen=True)
class ChartSource:
    path: str | None = None      # relative to promotion.yaml
    repo: str | None = None      # oci://... or https:// chart repository
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class App:
    name: str
    values: str                  # "{env}/values.yaml", relative to promotion.yaml
    chart: ChartSource
    source: str | None = None    # source repository of the app, when image labels do not say
    argocd_application: str = "{app}-{env}"
    chart_pin: str = "{env}/chart.yaml"   # each environment's chart pin (an OCIRepository), beside values
    evaluation: EvaluationSpec | None = None   # data set envbot measures old and new models on

    def values_path(self, env: str) -> str:
        return self.values.format(env=env, app=self.name)

    def chart_pin_path(self, env: str) -> str:
        return self.chart_pin.format(env=env, app=self.name)

    def application(self, env: str) -> str:
        return self.argocd_application.format(env=env, app=self.name)


@dataclass
class Policy:
    file: Path                   # promotion.yaml on disk
    prefix: str                  # its directory relative to the git root: "" or "environments"
    environments: list[Environment]
    apps: dict[str, App] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.file.parent

    def env(self, name: str) -> Environment:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments)
        raise EnvbotError(f"unknown environment {name!r} (promotion.yaml defines: {known})")

    def app(self, name: str | None) -> App:
        name = name or DEFAULT_APP
        if name not in self.apps:
            known = ", ".join(sorted(self.apps)) or "none"
            raise EnvbotError(f"unknown app {name!r} (promotion.yaml defines: {known})")
        return self.apps[name]

    def next_env(self, name: str) -> Environment | None:
        names = [e.name for e in self.environments]
        index = names.index(self.env(name).name)
        return self.environments[index + 1] if index + 1 < len(names) else None

    def upstream(self, name: str) -> Environment | None:
        """The environment NAME receives its releases from (the one before it), None for the first."""
        names = [e.name for e in self.environments]
        index = names.index(self.env(name).name)
        return self.environments[index - 1] if index > 0 else None

    def values_file(self, app: App, env: str) -> Path:
        return self.root / app.values_path(env)

    def repo_path(self, app: App, env: str) -> str:
        """Path of the values file relative to the git root (what git log and trailers talk about)."""
        return posixpath.normpath(posixpath.join(self.prefix, app.values_path(env)))

    def chart_pin_repo_path(self, app: App, env: str) -> str:
        """Path of the environment's chart pin file relative to the git root."""
        return str(PurePosixPath(self.prefix, app.chart_pin_path(env))) if self.prefix else app.chart_pin_path(env)

    def env_paths(self, app: App, env: str) -> list[str]:
        """The files that make ENV's release: its values (image, model) and its chart pin."""
        return [self.repo_path(app, env), self.chart_pin_repo_path(app, env)]


def find_policy(root: Path) -> Path:
    """promotion.yaml at the repo root (a separate environments repo) or under environments/ (this repo)."""
    for candidate in (root / POLICY_FILE, root / "environments" / POLICY_FILE):
        if candidate.is_file():
            return candidate
    raise EnvbotError(f"no {POLICY_FILE} at the root or under environments/ of {root}")


def _line(node: Any, key: Any) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


TEMPLATE_FIELDS = ("env", "app")


def template_problem(template: str) -> str | None:
    """Why TEMPLATE is not a valid {env}/{app} template, or None (what App.values_path will format)."""
    try:
        names = [name for _, name, spec, conv in Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"{template!r} is not a valid template ({exc}; write a literal brace as {{{{ or }}}})"
    unknown = [name for name in names if name not in TEMPLATE_FIELDS]
    if unknown:
        return (f"{template!r} uses {{{unknown[0]}}}; the placeholders are "
                + ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS))
    return None


def load_policy(root: Path) -> Policy:
    path = find_policy(root)
    display = path.relative_to(root)
    from bot.git import regular_file

    regular_file(root, display.as_posix())
    doc = load_yaml(read_text(path, str(display)), str(display))

    def fail(node: Any, key: Any, message: str) -> EnvbotError:
        line = _line(node, key)
        return BadInput(f"{display}:{line}: {message}" if line else f"{display}: {message}")

    if not isinstance(doc, dict) or not isinstance(doc.get("environments"), list) or not doc["environments"]:
        raise EnvbotError(f"{display}: 'environments' must be a non-empty list")
    environments: list[Environment] = []
    for index, item in enumerate(doc["environments"]):
        where = f"environments[{index}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise fail(doc, "environments", f"{where} needs a name")
        landing = str(item.get("landing", "push"))
        if landing not in LANDINGS:
            raise fail(item, "landing", f"{where}.landing: {landing!r} is not one of {', '.join(LANDINGS)}")
        try:
            soak = parse_duration(item["soak"]) if item.get("soak") else timedelta(0)
        except ValueError as exc:
            raise fail(item, "soak", f"{where}.soak: {exc}") from exc
        windows = []
        for w_index, window in enumerate(item.get("freeze") or []):
            w_where = f"{where}.freeze[{w_index}]"
            if not isinstance(window, dict) or not croniter.is_valid(str(window.get("schedule", ""))):
                raise fail(item, "freeze", f"{w_where}.schedule: not a cron expression")
            try:
                duration = parse_duration(window.get("duration", ""))
                ZoneInfo(str(window.get("timezone", "UTC")))
            except (ValueError, ZoneInfoNotFoundError) as exc:
                raise fail(window, "duration", f"{w_where}: {exc}") from exc
            windows.append(FreezeWindow(str(window["schedule"]), duration, str(window.get("timezone", "UTC"))))
        try:
            model_gates = parse_model_gates(item.get("modelGates"), f"{where}.modelGates")
        except ValueError as exc:
            raise fail(item, "modelGates", str(exc)) from exc
        auto_merge = item.get("autoMerge", False)
        if not isinstance(auto_merge, bool):
            raise fail(item, "autoMerge", f"{where}.autoMerge: {auto_merge!r} is not true or false")
        strategy = str(item.get("mergeStrategy", MERGE_STRATEGIES[0]))
        if strategy not in MERGE_STRATEGIES:
            raise fail(item, "mergeStrategy",
                       f"{where}.mergeStrategy: {strategy!r} is not one of {', '.join(MERGE_STRATEGIES)}")
        name = str(item["name"])
        if any(e.name == name for e in environments):
            raise fail(item, "name", f"{where}.name: duplicate environment {name!r}")
        environments.append(Environment(name, str(item.get("namespace") or f"{DEFAULT_APP}-{name}"), landing,
                                        soak, tuple(windows), model_gates, auto_merge, strategy))

    prefix = path.parent.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix
    apps: dict[str, App] = {}
    app_specs = doc.get("apps") or {DEFAULT_APP: {}}
    if not isinstance(app_specs, dict):
        raise fail(doc, "apps", "apps must be a mapping of app name -> settings")
    for name, spec in app_specs.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise fail(app_specs, name, f"apps.{name} must be a mapping")
        chart = spec.get("chart") or {}
        if not isinstance(chart, dict):
            raise fail(spec, "chart", f"apps.{name}.chart must be a mapping")
        for key in ("values", "argocdApplication", "chartPin"):
            problem = template_problem(str(spec[key])) if key in spec else None
            if problem:
                raise fail(spec, key, f"apps.{name}.{key}: {problem}")
        values = str(spec.get("values", "{env}/values.yaml"))
        chart_pin = str(spec.get("chartPin", "{env}/chart.yaml"))
        for key, template in (("values", values), ("chartPin", chart_pin)):
            example = posixpath.normpath(posixpath.join(prefix, template.format(env="x", app=str(name))))
            if posixpath.isabs(template) or example == ".." or example.startswith("../"):
                raise fail(spec, key, f"apps.{name}.{key}: {template!r} must be a relative path inside "
                                      f"the repository")
        try:
            evaluation = parse_evaluation(spec.get("evaluation"), f"apps.{name}.evaluation")
        except ValueError as exc:
            raise fail(spec, "evaluation", str(exc)) from exc
        apps[str(name)] = App(
            name=str(name),
            values=values,
            chart=ChartSource(path=chart.get("path"), repo=chart.get("repo"), name=chart.get("name"),
                              version=None if chart.get("version") is None else str(chart.get("version"))),
            source=spec.get("source"),
            argocd_application=str(spec.get("argocdApplication", "{app}-{env}")),
            chart_pin=chart_pin,
            evaluation=evaluation,
        )
    return Policy(file=path, prefix=prefix, environments=environments, apps=apps)
