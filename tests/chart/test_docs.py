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


# One source of truth for value docs: the `# -- ` comment in values.yaml. The schema's description and
# the README's row say the same words, and the service defaults the chart passes on are the service's own.
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def schema_node(path: str) -> dict[str, Any] | None:
    node: Any = SCHEMA
    for key in path.split("."):
        node = (node.get("properties") or {}).get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def test_schema_descriptions_are_the_values_comments() -> None:
    drift = {path: (schema_node(path) or {}).get("description") for path in documented_keys(VALUES_TEXT)}
    drift = {path: found for path, found in drift.items() if found != documented_keys(VALUES_TEXT)[path]}
    assert drift == {}, "values.schema.json descriptions that differ from the values.yaml comment"


def test_readme_descriptions_are_the_values_comments() -> None:
    rows = {key: text for key, _, text in re.findall(r"^\| `([^`]+)` \| `(.*)` \| (.+) \|$", README,
                                                      flags=re.MULTILINE)}
    drift = {path: rows.get(path) for path, comment in documented_keys(VALUES_TEXT).items()
             if rows.get(path) != comment}
    assert drift == {}, "README rows whose description differs from the values.yaml comment"


def test_server_defaults_are_the_services_own_defaults() -> None:
    from dataclasses import fields

    from app.config import Settings

    service_defaults = {f.name: f.default for f in fields(Settings)}
    checked = []
    for path, comment in documented_keys(VALUES_TEXT).items():
        if not path.startswith("server."):
            continue
        # The comment names the variable the chart sets: "(WEB_THREADS)" or "($PORT)".
        variable = re.search(r"\(\$?([A-Z][A-Z0-9_]+)\)", comment)
        assert variable, f"{path}: the comment must name the service's environment variable"
        name = variable.group(1)
        assert name in service_defaults, f"{path}: app/config.py Settings has no {name}"
        value: Any = VALUES
        for key in path.split("."):
            value = value[key]
        assert value == service_defaults[name], f"{path} is {value!r}, the service's default {service_defaults[name]!r}"
        checked.append(name)
    assert "WEB_THREADS" in checked and "WEB_CONCURRENCY" in checked


def test_the_drift_checks_catch_a_changed_description() -> None:
    path = "serviceAccount.create"
    node = schema_node(path)
    assert node is not None
    original = node["description"]
    try:
        node["description"] = "Refuse to render without image.digest (staging and prod turn this on)."
        drift = [p for p, c in documented_keys(VALUES_TEXT).items() if (schema_node(p) or {}).get("description") != c]
        assert drift == [path]
    finally:
        node["description"] = original
