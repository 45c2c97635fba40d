"""An environment's release pin (values file + chart pin file), what makes two the same release, and where
a pin came from: the commit that made an environment's current pin, found in git history."""

from __future__ import annotations

from collections.abc import Callable

from bot.git import CommitInfo, Workspace
from bot.output import EnvbotError
from bot.policy import App, Policy
from bot.values import ChartPin, ReleasePin, read_chart_pin_text, read_pin_text


def same_release(a: ReleasePin, b: ReleasePin) -> bool:
    """Same deployed bits: image digest, model digest and chart digest (tags, versions and URIs are for people).

    The single definition of "the same release": status, soak (pin_origin) and promotion use it.
    """
    return (a.image.digest == b.image.digest and a.model.sha256 == b.model.sha256 and a.model.uri == b.model.uri
            and a.chart.digest == b.chart.digest and a.chart.repository == b.chart.repository)


def release_from_texts(values_text: str, chart_text: str | None, values_display: str,
                       chart_display: str) -> ReleasePin:
    """The pin from the values file's text and the chart pin file's text (None: no chart pin file)."""
    pin = read_pin_text(values_text, values_display)
    chart = read_chart_pin_text(chart_text, chart_display) if chart_text is not None else ChartPin()
    return ReleasePin(pin.image, pin.model, chart)


def read_release_with(show: Callable[[str], str | None], policy: Policy, app: App, env: str,
                      suffix: str = "") -> ReleasePin | None:
    """ENV's pin read through SHOW(path) -> text|None; None when ENV has no values file."""
    values_path, chart_path = policy.env_paths(app, env)
    values_text = show(values_path)
    if values_text is None:
        return None
    return release_from_texts(values_text, show(chart_path), values_path + suffix, chart_path + suffix)


def read_release(ws: Workspace, rev: str, policy: Policy, app: App, env: str) -> ReleasePin | None:
    """ENV's pin at git revision REV (None when ENV has no values file there)."""
    return read_release_with(lambda path: ws.show(rev, path), policy, app, env,
                             "" if rev == "HEAD" else f"@{rev[:12]}")


def pin_origin(ws: Workspace, paths: str | list[str], pin: ReleasePin) -> CommitInfo | None:
    """The first-parent commit that set the pin in PATHS (values file, chart pin file) to PIN: when the
    release landed in the environment.

    Walks back over commits touching PATHS while the pin before them was already PIN (edits of other
    settings do not restart the soak clock); the clone is deepened only as far as that walk goes.
    """
    paths = [paths] if isinstance(paths, str) else paths   # a values file alone: a repo without chart pins
    values_path, chart_path = paths[0], paths[1] if len(paths) > 1 else None
    origin: CommitInfo | None = None
    for commit in ws.walk(paths):
        origin = commit
        if not commit.parents:
            break
        parent = commit.parents[0]
        before = ws.show(parent, values_path)
        if before is None:
            break
        try:
            chart_before = ws.show(parent, chart_path) if chart_path else None
            previous = release_from_texts(before, chart_before, f"{values_path}@{parent[:12]}",
                                          f"{chart_path}@{parent[:12]}")
        except EnvbotError:   # an older, broken revision of the files: the pin started after it
            break
        if not same_release(previous, pin):
            break
    return origin
