"""Step: `helm template` the old and the new release, each with its own pinned chart, diff per resource."""

from __future__ import annotations

from bot.pins import read_release_with
from bot.render import diff_resources, render
from bot.steps import Outcome, Promotion


def run(promotion: Promotion, outcome: Outcome) -> None:
    if not promotion.render or not outcome.patches:
        return
    ws = promotion.workspace
    path = promotion.values_path
    old_text = ws.show("HEAD", path) or ""
    new_text = (ws.path / path).read_text()
    old_pin = read_release_with(lambda p: ws.show("HEAD", p), promotion.policy, promotion.app, promotion.env.name)
    new_pin = outcome.new_pin
    namespace = promotion.env.namespace
    old = render(promotion.policy, promotion.app, namespace, old_text, f"{path}@HEAD",
                 old_pin.chart if old_pin else None)
    new = render(promotion.policy, promotion.app, namespace, new_text, path, new_pin.chart if new_pin else None)
    outcome.rendered = diff_resources(old, new, f"{promotion.env.name}@{ws.head()[:12]}",
                                        f"{promotion.env.name}@new")
