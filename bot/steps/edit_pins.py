"""Step: write the wanted image and model pin into the environment's values file (targeted scalar edit)."""

from __future__ import annotations

from bot.output import EnvbotError
from bot.steps import Promotion
from bot.steps.patches import record_patches
from bot.values import edit_pin_text, read_pin_text


def run(promotion: Promotion) -> None:
    assert promotion.pin is not None
    path = promotion.workspace.path / promotion.values_path
    display = promotion.values_path
    if not path.is_file():
        raise EnvbotError(f"{display}: no values file for app {promotion.app.name} in {promotion.env.name}")
    text = path.read_text()
    promotion.old_pin = read_pin_text(text, display)
    edited = edit_pin_text(text, promotion.pin, display)
    promotion.new_pin = read_pin_text(edited, display)
    if edited != text:
        path.write_text(edited)
    record_patches(promotion, [promotion.values_path])
