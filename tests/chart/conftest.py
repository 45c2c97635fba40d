"""Fixtures of the chart tests: every environment and matrix case rendered once per session."""

from __future__ import annotations

import pytest

from tests.chart.helmchart import ENVIRONMENTS, MATRIX, Rendered, environment_values, render

# Every render the object-level tests run over: the three environments, then the values matrix.
RENDER_CASES = [f"env-{env}" for env in ENVIRONMENTS] + [case for case, _ in MATRIX]


@pytest.fixture(scope="session")
def renders(helm_bin: str) -> dict[str, Rendered]:
    rendered = {
        f"env-{env}": render(helm_bin, value_files=[environment_values(env)], namespace=f"ai-app-{env}")
        for env in ENVIRONMENTS
    }
    rendered.update({case: render(helm_bin, values) for case, values in MATRIX})
    return rendered
