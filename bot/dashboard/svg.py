"""Charts drawn on the server as inline SVG: no script, no library, nothing fetched by the browser."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 200, 48, 36, 16
COLORS = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2")


def _scale(max_value: float) -> float:
    return max_value if max_value > 0 else 1.0


def bar_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], unit: str = "") -> Markup:
    """Grouped bars: one group per label, one bar per series (e.g. per environment)."""
    names = list(series)
    top = _scale(max((v for values in series.values() for v in values), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(names), 1), 1)
    parts = [_frame(title, top, unit)]
    for g, label in enumerate(labels):
        x0 = PAD_LEFT + g * group_w + group_w * 0.1
        for s, name in enumerate(names):
            value = series[name][g]
            h = plot_h * value / top
            x, y = x0 + s * bar_w, PAD_TOP + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(name)} {escape(label)}: '
                         f'{value:g}{escape(unit)}</title></rect>')
        if len(labels) <= 16 or g % max(len(labels) // 8, 1) == 0:
            parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" font-size="10" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append(_legend(names))
    return _svg(title, parts)


def scatter_chart(title: str, points: dict[str, Sequence[tuple[float, float, str]]], x_range: tuple[float, float],
                  x_labels: Sequence[tuple[float, str]], unit: str = "h") -> Markup:
    """Dots per series: (x, y, tooltip); x in X_RANGE (e.g. unix time), y in UNIT."""
    names = list(points)
    top = _scale(max((p[1] for values in points.values() for p in values), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    span = max(x_range[1] - x_range[0], 1)
    parts = [_frame(title, top, unit)]
    for s, name in enumerate(names):
        for x_value, y_value, tip in points[name]:
            x = PAD_LEFT + plot_w * (x_value - x_range[0]) / span
            y = PAD_TOP + plot_h - plot_h * y_value / top
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{COLORS[s % len(COLORS)]}" '
                         f'fill-opacity="0.8"><title>{escape(tip)}</title></circle>')
    for x_value, label in x_labels:
        x = PAD_LEFT + plot_w * (x_value - x_range[0]) / span
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" font-size="10" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append(_legend(names))
    return _svg(title, parts)


def _frame(title: str, top: float, unit: str) -> str:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    lines = [f'<text x="{PAD_LEFT}" y="11" font-size="12" font-weight="bold">{escape(title)}</text>']
    for i in range(5):
        value = top * i / 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        lines.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        lines.append(f'<text x="{PAD_LEFT - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">'
                     f'{value:.3g}{escape(unit)}</text>')
    return "".join(lines)


def _legend(names: Sequence[str]) -> str:
    parts = []
    for s, name in enumerate(names):
        x = PAD_LEFT + s * 110
        parts.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{COLORS[s % len(COLORS)]}"/>'
                     f'<text x="{x + 14}" y="{HEIGHT - 5}" font-size="11">{escape(name)}</text>')
    return "".join(parts)


def _svg(title: str, parts: list[str]) -> Markup:
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
                  f'height="{HEIGHT}" role="img" aria-label="{escape(title)}" class="chart">'
                  + "".join(parts) + "</svg>")
