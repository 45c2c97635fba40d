"""docs/envbot.md's promotion.yaml reference lists exactly the keys bot/policy.py reads, and every
variable envbot reads is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = (REPO_ROOT / "docs" / "envbot.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end != -1 else None]


def keys_read_by_the_parser() -> set[str]:
    """Every string key load_policy() reads: `.get("key")` and `node["key"]`."""
    tree = ast.parse((REPO_ROOT / "bot" / "policy.py").read_text(encoding="utf-8"))
    load = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "load_policy")
    keys = set()
    for node in ast.walk(load):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            keys.add(node.args[0].value)
        if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)):
            keys.add(node.slice.value)
    return keys


def documented_keys() -> set[str]:
    rows = re.findall(r"^\| `([^`]+)` \|", section("`promotion.yaml` reference"), re.M)
    # `environments[].freeze[].schedule` -> schedule; `apps.<app>.chart.repo` -> repo
    return {re.split(r"[.\]]", row)[-1] for row in rows}


def test_the_reference_lists_every_key_the_parser_reads_and_no_other() -> None:
    parsed = keys_read_by_the_parser()
    assert len(parsed) > 10
    assert documented_keys() == parsed


def test_every_landing_mode_is_documented() -> None:
    from bot.policy import LANDINGS

    landing_row = next(line for line in section("`promotion.yaml` reference").splitlines()
                       if line.startswith("| `environments[].landing`"))
    for landing in LANDINGS:
        assert f"`{landing}`" in landing_row


def test_every_variable_envbot_reads_is_documented() -> None:
    read = set()
    for path in (REPO_ROOT / "bot").rglob("*.py"):
        read |= set(re.findall(r"environ(?:\.get)?[\[(]\"([A-Z][A-Z0-9_]+)\"", path.read_text(encoding="utf-8")))
    read -= {"GIT_CONFIG_COUNT"}  # extended, not configured: documented as "GIT_CONFIG_*"
    variables = section("Environment variables and credentials")
    assert read, "envbot reads some variables"
    assert {name for name in read if f"`{name}`" not in variables} == set()
