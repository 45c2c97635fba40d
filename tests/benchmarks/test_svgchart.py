"""The benchmark scripts' SVG bar charts: well-formed, to scale, escaped; and the ones the docs show exist."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks.svgchart import BAR_AREA, bar_chart, write_chart

REPO_ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


def bars_of(svg: str) -> list[float]:
    root = ET.fromstring(svg)
    return [float(r.get("width", 0)) for r in root.iter(f"{SVG}rect") if r.get("x") is not None]


def test_bars_are_to_scale_and_the_largest_fills_the_area() -> None:
    svg = bar_chart("t", "s", [("a", 1.0), ("b", 4.0), ("c", 0.0)])
    assert bars_of(svg) == [BAR_AREA / 4, BAR_AREA, 0.0]
    assert "4.00 s" in svg and "1.00 s" in svg


def test_text_is_escaped_and_the_document_is_well_formed() -> None:
    svg = bar_chart("<b>&</b>", "ms", [("ACCESS_LOG=false & <x>", 2.0)], note="a < b")
    root = ET.fromstring(svg)  # raises on malformed XML
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<b>&</b>" in texts and "ACCESS_LOG=false & <x>" in texts and "a < b" in texts


@pytest.mark.parametrize("bars", [[], [("a", -1.0)]])
def test_no_bars_or_negative_values_are_refused(bars: list[tuple[str, float]]) -> None:
    with pytest.raises(ValueError):
        bar_chart("t", "s", bars)


def test_the_same_figures_give_the_same_file(tmp_path: Path) -> None:
    first = write_chart(tmp_path / "a" / "c.svg", "t", "s", [("a", 1.5)]).read_bytes()
    assert write_chart(tmp_path / "b.svg", "t", "s", [("a", 1.5)]).read_bytes() == first


def test_every_chart_the_benchmarks_page_shows_exists_and_was_written_by_the_scripts() -> None:
    page = (REPO_ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\((img/[^)]+\.svg)\)", page)
    assert len(shown) >= 5
    scripts = "".join((REPO_ROOT / "benchmarks" / name).read_text() for name in ("fetch.py", "serving.py", "envbot.py"))
    for path in shown:
        assert ET.parse(REPO_ROOT / "docs" / path).getroot().tag == f"{SVG}svg"
        assert Path(path).name in scripts, f"{path} is not written by a benchmark script"
