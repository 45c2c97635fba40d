"""Step: write the wanted image and model pin into the environment's values file (targeted scalar edit)."""

from __future__ import annotations

from bot.errors import EnvbotError
from bot.git import regular_file
from bot.steps import Outcome, Promotion
from bot.steps.patches import record_patches
from bot.values import edit_pin_text, read_pin_text
from bot.yamlfile import read_text, write_text


def run(promotion: Promotion, outcome: Outcome) -> None:
    assert promotion.pin is not None
    display = promotion.values_path
    path = promotion.workspace.path / display
    if not path.exists() and not path.is_symlink():
        raise EnvbotError(f"{display}: no values file for app {promotion.app.name} in {promotion.env.name}")
    regular_file(promotion.workspace.path, display)
    # Bytes in, bytes out: CRLF, mixed line endings and a BOM stay exactly as they were.
    text = read_text(path, display)
    outcome.old_pin = read_pin_text(text, display)
    edited = edit_pin_text(text, promotion.pin, display)
    outcome.new_pin = read_pin_text(edited, display)
    if edited != text:
        write_text(path, edited)
    record_patches(promotion, outcome, [promotion.values_path])
