"""Step: one commit by the bot identity with the audit trailers (nothing in a dry run or without a change)."""

from __future__ import annotations

from bot.git import format_message
from bot.steps import Outcome, Promotion
from bot.steps.describe import summary_lines


def trailers(promotion: Promotion, outcome: Outcome) -> list[tuple[str, str]]:
    result = [("Envbot-Action", promotion.action), ("Envbot-App", promotion.app.name),
              ("Envbot-Env", promotion.env.name)]
    pin = outcome.new_pin
    if pin is not None and pin.image.digest:
        result.append(("Envbot-Image", f"{pin.image.repository}@{pin.image.digest}"))
    if pin is not None and pin.model.name:
        result.append(("Envbot-Model", pin.model.label))
    if pin is not None and pin.chart.digest:
        result.append(("Envbot-Chart", pin.chart.label))
    return result + list(promotion.trailers)


def run(promotion: Promotion, outcome: Outcome) -> None:
    if promotion.dry_run or not outcome.patches:
        return
    message = format_message(promotion.subject, "\n".join(summary_lines(outcome)), trailers(promotion, outcome))
    outcome.commit = promotion.workspace.commit(list(outcome.patches), message, promotion.identity)
