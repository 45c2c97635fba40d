"""Step: the pull-request description (and commit body): what changes, source commits, rendered diff."""

from __future__ import annotations

from bot.output import short_digest
from bot.render import DEFAULT_DIFF_BUDGET, format_diffs
from bot.steps import Outcome, Promotion
from bot.values import ReleasePin

# Room left for everything but the rendered diff under GitHub's 65,536-character body limit.
BODY_LIMIT = 65_000


def change_rows(old: ReleasePin | None, new: ReleasePin | None) -> list[tuple[str, str, str]]:
    """(field, old, new) for every pinned scalar that changes."""
    if new is None:
        return []
    rows = []
    for section in ("image", "model", "chart"):
        before = getattr(old, section) if old else None
        after = getattr(new, section)
        for key, value in vars(after).items():
            previous = getattr(before, key) if before else ""
            if previous != value:
                rows.append((f"{section}.{key}", previous, value))
    return rows


def summary_lines(outcome: Outcome) -> list[str]:
    old, new = outcome.old_pin, outcome.new_pin
    lines = []
    if new is not None:
        image_old = f"{old.image.tag} ({short_digest(old.image.digest)})" if old else "-"
        lines.append(f"image {new.image.repository}: {image_old} -> {new.image.tag} ({short_digest(new.image.digest)})")
        if new.model.name:
            model_old = f"{old.model.name} {old.model.version} ({short_digest(old.model.sha256)})" if old else "-"
            lines.append(f"model: {model_old} -> {new.model.name} {new.model.version} "
                         f"({short_digest(new.model.sha256)})")
        if new.chart.repository:
            chart_old = f"{old.chart.version} ({short_digest(old.chart.digest)})" if old and old.chart.digest else "-"
            lines.append(f"chart {new.chart.repository}: {chart_old} -> {new.chart.version} "
                         f"({short_digest(new.chart.digest)})")
    return lines


def run(promotion: Promotion, outcome: Outcome) -> None:
    if not outcome.patches:
        return
    rows = change_rows(outcome.old_pin, outcome.new_pin)
    parts = [f"## {promotion.subject}", "",
             f"Environment **{promotion.env.name}** (namespace `{promotion.env.namespace}`), "
             f"app **{promotion.app.name}**, file `{promotion.values_path}`.", ""]
    if rows:
        parts += ["| Field | Old | New |", "| --- | --- | --- |"]
        parts += [f"| `{key}` | `{before or '-'}` | `{after or '-'}` |" for key, before, after in rows]
        parts.append("")
    if promotion.model_section:
        parts += [promotion.model_section]
    if outcome.changelog:
        parts += ["### Source changes", "", outcome.changelog]
    head = "\n".join(parts)
    if outcome.rendered is not None:
        budget = min(DEFAULT_DIFF_BUDGET, max(2_000, BODY_LIMIT - len(head) - 500))
        head += "\n### Rendered manifests (helm template)\n\n" + format_diffs(outcome.rendered, budget, fenced=True)
    trailers = [f"{key}: {value}" for key, value in promotion.trailers]
    if trailers:
        head += "\n" + "\n".join(f"`{t}`  " for t in trailers) + "\n"
    outcome.description = head
