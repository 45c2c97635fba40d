"""Step: write the wanted image, model and chart pin into the environment's files (targeted scalar edits)."""

from __future__ import annotations

from bot.charts import check_allowed
from bot.errors import EnvbotError
from bot.git import regular_file
from bot.pins import release_from_texts
from bot.steps import Outcome, Promotion
from bot.steps.patches import record_patches
from bot.values import edit_chart_pin_text, edit_pin_text
from bot.yamlfile import read_text, write_text


def run(promotion: Promotion, outcome: Outcome) -> None:
    assert promotion.pin is not None
    root = promotion.workspace.path
    values_file, chart_file = root / promotion.values_path, root / promotion.chart_path
    if not values_file.exists() and not values_file.is_symlink():
        raise EnvbotError(f"{promotion.values_path}: no values file for app {promotion.app.name} in "
                          f"{promotion.env.name}")
    regular_file(root, promotion.values_path)
    # Bytes in, bytes out: CRLF, mixed line endings and a BOM stay exactly as they were.
    values_text = read_text(values_file, promotion.values_path)
    chart_text = None
    if chart_file.exists() or chart_file.is_symlink():
        regular_file(root, promotion.chart_path)
        chart_text = read_text(chart_file, promotion.chart_path)
    outcome.old_pin = release_from_texts(values_text, chart_text, promotion.values_path, promotion.chart_path)
    edited_values = edit_pin_text(values_text, promotion.pin, promotion.values_path)
    edited_chart = chart_text
    if promotion.pin.chart.repository:
        check_allowed(promotion.pin.chart, promotion.app.chart, promotion.chart_path)
        if chart_text is None:
            raise EnvbotError(f"{promotion.chart_path}: {promotion.env.name} has no chart pin file to pin "
                              f"{promotion.pin.chart.ref} in (copy one from environments/<env>/chart.yaml)")
        edited_chart = edit_chart_pin_text(chart_text, promotion.pin.chart, promotion.chart_path)
    outcome.new_pin = release_from_texts(edited_values, edited_chart, promotion.values_path,
                                         promotion.chart_path)
    # Both files are checked before either is written: a bad chart file leaves the values untouched.
    if edited_values != values_text:
        write_text(values_file, edited_values)
    if edited_chart is not None and edited_chart != chart_text:
        write_text(chart_file, edited_chart)
    record_patches(promotion, outcome, [p for p in promotion.paths if (root / p).is_file()])
