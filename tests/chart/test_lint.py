"""helm lint --strict on the chart alone and with each environment's values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helmchart import CHART_DIR, ENVIRONMENTS, MATRIX, environment_values, helm


def test_chart_lints_strict_with_defaults(helm_bin: str) -> None:
    result = helm(helm_bin, "lint", "--strict", str(CHART_DIR))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_chart_lints_strict_with_environment(helm_bin: str, env: str) -> None:
    result = helm(helm_bin, "lint", "--strict", str(CHART_DIR), "--values", str(environment_values(env)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_packages(helm_bin: str, tmp_path: Path) -> None:
    result = helm(helm_bin, "package", str(CHART_DIR), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("ai-app-*.tgz")
    listing = helm(helm_bin, "show", "values", str(package))
    assert listing.returncode == 0 and "requireDigest" in listing.stdout


@pytest.mark.parametrize(("case", "values"), MATRIX, ids=[case for case, _ in MATRIX])
def test_chart_lints_strict_with_each_matrix_case(
    helm_bin: str, tmp_path: Path, case: str, values: dict[str, Any]
) -> None:
    values_file = tmp_path / f"{case}.json"
    values_file.write_text(json.dumps(values))
    result = helm(helm_bin, "lint", "--strict", str(CHART_DIR), "--values", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr
