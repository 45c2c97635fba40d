"""Every value is commented in values.yaml and documented, with its default, in the chart README."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.chart.helmchart import CHART_DIR, load_yaml

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()
VALUES = load_yaml(CHART_DIR / "values.yaml")
README = (CHART_DIR / "README.md").read_text()


def documented_keys(text: str) -> dict[str, str]:
    """Key path -> its `# -- ` comment (the line right above the key)."""
    found: dict[str, str] = {}
    stack: list[str] = []
    pending = None
    for line in text.splitlines():
        comment = re.match(r"^\s*# -- (.+)$", line)
        if comment:
            pending = comment.group(1)
            continue
        key = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if key:
            stack = [*stack[: len(key.group(1)) // 2], key.group(2)]
            if pending:
                found[".".join(stack)] = pending
        if not line.strip().startswith("#"):
            pending = None
    return found


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Paths of every scalar, list and empty map (what a user sets)."""
    if isinstance(values, dict) and values:
        return [p for key, sub in values.items() for p in leaf_paths(sub, f"{prefix}.{key}" if prefix else key)]
    return [prefix]


def test_every_value_has_a_one_line_comment() -> None:
    documented = documented_keys(VALUES_TEXT)
    undocumented = [
        path for path in leaf_paths(VALUES)
        if not any(path == key or path.startswith(key + ".") for key in documented)
    ]
    assert undocumented == []


def test_readme_table_lists_every_value_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `([^`]+)` \| `(.*)` \| .+ \|$", README, flags=re.MULTILINE))
    for path in documented_keys(VALUES_TEXT):
        assert path in rows, f"README has no row for {path}"
        value: Any = VALUES
        for key in path.split("."):
            value = value[key]
        assert json.loads(rows[path].replace("\\|", "|")) == value, f"README default of {path} is stale"


def test_readme_explains_model_modes_and_workload_identity() -> None:
    for heading in ("## The two model modes", "## Azure Workload Identity", "## Pinning"):
        assert heading in README
    assert "system:serviceaccount:" in README and "azure.workload.identity/client-id" in README
