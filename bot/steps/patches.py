"""Step helper: the exact patch (git diff) of the files a step changed in the work tree."""

from __future__ import annotations

from bot.steps import Outcome, Promotion


def record_patches(promotion: Promotion, outcome: Outcome, paths: list[str]) -> None:
    g = promotion.workspace.g
    g.add("--intent-to-add", "--", *paths)
    for path in paths:
        patch = g.diff("HEAD", "--", path, strip_newline_in_stdout=False)
        if patch:
            outcome.patches[path] = patch
