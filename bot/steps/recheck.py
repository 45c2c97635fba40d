"""Step: re-check the inputs right before committing (a tag that moved since it was resolved fails here)."""

from __future__ import annotations

from bot.steps import Promotion


def run(promotion: Promotion) -> None:
    if not promotion.patches:
        return
    for check in promotion.prechecks:
        check()
