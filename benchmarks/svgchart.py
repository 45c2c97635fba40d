"""A small SVG bar-chart writer for the benchmark scripts (no plotting library, no fonts to fetch).

Horizontal bars, one per labelled figure, scaled to the largest; the figure is written at the end of
each bar. The SVG is plain text, deterministic for the same input (diffs of docs/img stay readable),
and renders on GitHub and Azure DevOps, which show SVG images in Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

BAR_HEIGHT = 22
GAP = 8
BAR_AREA = 420
CHAR_WIDTH = 7.2  # average width of a 12px sans-serif character, for the label column
PALETTE = ("#2f6db3", "#e08a1e", "#4a9c5d", "#8a5fb8")


def bar_chart(title: str, unit: str, bars: Sequence[tuple[str, float]], *, groups: Sequence[int] = (),
              note: str = "") -> str:
    """An SVG document: `bars` as (label, value >= 0); `groups[i]` picks bar i's colour (default all 0)."""
    if not bars:
        raise ValueError("a chart needs at least one bar")
    if any(value < 0 for _, value in bars):
        raise ValueError("bar values must not be negative")
    label_width = int(max(len(label) for label, _ in bars) * CHAR_WIDTH) + 16
    value_width = 110
    top = 40
    width = label_width + BAR_AREA + value_width
    height = top + len(bars) * (BAR_HEIGHT + GAP) + (30 if note else 12)
    largest = max(value for _, value in bars) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="22" font-size="14" font-weight="bold" fill="#222222">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = top + index * (BAR_HEIGHT + GAP)
        length = round(BAR_AREA * value / largest, 1)
        colour = PALETTE[(groups[index] if index < len(groups) else 0) % len(PALETTE)]
        middle = y + BAR_HEIGHT / 2 + 4
        parts += [
            f'<text x="{label_width - 8}" y="{middle}" text-anchor="end" fill="#222222">{escape(label)}</text>',
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{BAR_HEIGHT}" fill="{colour}">'
            f"<title>{escape(label)}: {format_value(value)} {escape(unit)}</title></rect>",
            f'<text x="{label_width + length + 6}" y="{middle}" fill="#222222">'
            f"{format_value(value)} {escape(unit)}</text>",
        ]
    if note:
        parts.append(f'<text x="8" y="{height - 10}" font-size="11" fill="#555555">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def format_value(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}"


def write_chart(path: Path, title: str, unit: str, bars: Sequence[tuple[str, float]], **options: object) -> Path:
    """Write the chart to `path` (parents created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bar_chart(title, unit, bars, **options), encoding="utf-8")  # type: ignore[arg-type]
    return path
