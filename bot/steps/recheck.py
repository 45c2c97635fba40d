"""Step: re-check the inputs right before committing (a tag that moved since it was resolved fails here),
and that the release about to land still exists: the image digest in its registry, the model with
its sha256 in the store (a rollback or promotion must not pin something deleted meanwhile).
"""

from __future__ import annotations

from bot.errors import EnvbotError
from bot.output import info
from bot.steps import Outcome, Promotion


def run(promotion: Promotion, outcome: Outcome) -> None:
    if not outcome.patches:
        return
    for check in promotion.prechecks:
        check()
    if promotion.release_check is None or outcome.new_pin is None:
        return
    try:
        promotion.release_check(outcome.new_pin)
    except EnvbotError as exc:
        if promotion.override_reason is None:
            raise type(exc)(f"{exc}; nothing was committed (--override-reason TEXT lands it anyway)",
                            **exc.details) from exc
        info(f"override: {exc}")
