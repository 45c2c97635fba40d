"""Step: `helm template` the chart with the old and the new values, diff per resource."""

from __future__ import annotations

from bot.render import diff_resources, render
from bot.steps import Outcome, Promotion


def run(promotion: Promotion, outcome: Outcome) -> None:
    if not promotion.render or not outcome.patches:
        return
    ws = promotion.workspace
    path = promotion.values_path
    old_text = ws.show("HEAD", path) or ""
    new_text = (ws.path / path).read_text()
    namespace = promotion.env.namespace
    old = render(promotion.policy, promotion.app, namespace, old_text, f"{path}@HEAD")
    new = render(promotion.policy, promotion.app, namespace, new_text, path)
    outcome.rendered = diff_resources(old, new, f"{promotion.env.name}@{ws.head()[:12]}",
                                        f"{promotion.env.name}@new")
