"""Step: write the wanted image, model and chart pin into the environment's files (targeted scalar edits)."""

from __future__ import annotations

from bot.charts import check_allowed
from bot.output import EnvbotError
from bot.pins import release_from_texts
from bot.steps import Promotion
from bot.steps.patches import record_patches
from bot.values import edit_chart_pin_text, edit_pin_text


def run(promotion: Promotion) -> None:
    assert promotion.pin is not None
    root = promotion.workspace.path
    values_file, chart_file = root / promotion.values_path, root / promotion.chart_path
    if not values_file.is_file():
        raise EnvbotError(f"{promotion.values_path}: no values file for app {promotion.app.name} in "
                          f"{promotion.env.name}")
    values_text = values_file.read_text()
    chart_text = chart_file.read_text() if chart_file.is_file() else None
    promotion.old_pin = release_from_texts(values_text, chart_text, promotion.values_path, promotion.chart_path)
    edited_values = edit_pin_text(values_text, promotion.pin, promotion.values_path)
    edited_chart = chart_text
    if promotion.pin.chart.repository:
        check_allowed(promotion.pin.chart, promotion.app.chart, promotion.chart_path)
        if chart_text is None:
            raise EnvbotError(f"{promotion.chart_path}: {promotion.env.name} has no chart pin file to pin "
                              f"{promotion.pin.chart.ref} in (copy one from environments/<env>/chart.yaml)")
        edited_chart = edit_chart_pin_text(chart_text, promotion.pin.chart, promotion.chart_path)
    promotion.new_pin = release_from_texts(edited_values, edited_chart, promotion.values_path,
                                           promotion.chart_path)
    # Both files are checked before either is written: a bad chart file leaves the values untouched.
    if edited_values != values_text:
        values_file.write_text(edited_values)
    if edited_chart is not None and edited_chart != chart_text:
        chart_file.write_text(edited_chart)
    record_patches(promotion, [p for p in promotion.paths if (root / p).is_file()])
