"""Validation of Azure Pipelines YAML against Microsoft's published schema (service-schema.json).

The schema file is the copy check-jsonschema vendors (`vendor.azure-pipelines`), pinned in
pyproject.toml's test extra; docs/schemas.md says which upstream release it is.

The schema is JSON Schema draft-07 plus the extensions of the Azure Pipelines language server,
which this module honours the way that server does:
- scalars: Azure Pipelines reads every scalar as a string, so the YAML is loaded with ruamel's
  base loader (`true`, `1` stay strings). The schema's own `boolean` definition is string patterns
  (`^true$`), but task inputs say `"type": "boolean"`/`"number"`; like the language server, a
  string spelling a YAML boolean or number satisfies those types.
- `ignoreCase: value|all`: `pattern` and `enum` compare case-insensitively.
- `firstProperty`: the mapping's first key must be one of the listed names (`task:` first).
- compile-time expression keys (`${{ if ... }}:`) are hoisted into their parent, as the language
  server does, since their content is what Azure sees after template expansion.
Templates are not pipelines: each kind validates against its own definition (`stepsTemplate`,
`jobsTemplate`, `stagesTemplate`, `variablesTemplate`), chosen by its top-level key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft7Validator, ValidationError
from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PACKAGE = "check-jsonschema"
# Microsoft's service-schema.json as check-jsonschema ships it for its `check-azure-pipelines` hook.
SCHEMA_PATH = Path(str(resources.files("check_jsonschema.builtin_schemas.vendor") / "azure-pipelines.json"))

YAML_BOOLEANS = {"true", "false", "y", "yes", "n", "no", "on", "off"}
YAML_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
TEMPLATE_KINDS = ("steps", "jobs", "stages", "variables")


def load_yaml(path: Path) -> Any:
    """The document with every scalar as a string, the way Azure Pipelines reads it."""
    return YAML(typ="base").load(path.read_text(encoding="utf-8"))


def hoist_expressions(node: Any) -> Any:
    """Replaces `${{ ... }}:` keys by their content, like the language server."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if _is_expression(key) and isinstance(value, dict):
                out.update(hoist_expressions(value))
            else:
                out[key] = hoist_expressions(value)
        return out
    if isinstance(node, list):
        items: list[Any] = []
        for item in node:
            if isinstance(item, dict) and item and _is_expression(next(iter(item))):
                value = next(iter(item.values()))
                if isinstance(value, list):
                    items.extend(hoist_expressions(value))
                    continue
            items.append(hoist_expressions(item))
        return items
    return node


def _is_expression(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("${{") and key.endswith("}}")


def _ignores_value_case(schema: dict[str, Any]) -> bool:
    return schema.get("ignoreCase") in ("value", "all")


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not isinstance(instance, str):
        return
    flags = re.IGNORECASE if _ignores_value_case(schema) else 0
    if not re.search(pattern, instance, flags):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _enum(validator: Any, enums: list[Any], instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, str) and _ignores_value_case(schema):
        if instance.lower() in {e.lower() for e in enums if isinstance(e, str)}:
            return
    elif instance in enums:
        return
    yield ValidationError(f"{instance!r} is not one of {enums!r}")


def _first_property(
    validator: Any, names: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, dict) and instance and next(iter(instance)) not in names:
        yield ValidationError(f"the first key must be one of {names}, not {next(iter(instance))!r}")


def _is_boolean(checker: Any, instance: Any) -> bool:
    return isinstance(instance, bool) or (isinstance(instance, str) and instance.lower() in YAML_BOOLEANS)


def _is_number(checker: Any, instance: Any) -> bool:
    if isinstance(instance, str):
        return bool(YAML_NUMBER.match(instance))
    return Draft7Validator.TYPE_CHECKER.is_type(instance, "number")


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, str):
        return bool(re.fullmatch(r"[-+]?\d+", instance))
    return Draft7Validator.TYPE_CHECKER.is_type(instance, "integer")


AzurePipelinesValidator = jsonschema.validators.extend(
    Draft7Validator,
    validators={
        "pattern": _pattern,
        "enum": _enum,
        "firstProperty": _first_property,
    },
    type_checker=Draft7Validator.TYPE_CHECKER.redefine_many(
        {"boolean": _is_boolean, "number": _is_number, "integer": _is_integer}
    ),
)


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validator_for(definition: str | None) -> Any:
    """A validator for the whole pipeline (definition None) or for one named definition."""
    schema = load_schema()
    if definition is not None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return AzurePipelinesValidator(schema)


def template_kind(document: dict[str, Any]) -> str:
    """steps | jobs | stages | variables: what a template file holds, from its top-level key."""
    kinds = [kind for kind in TEMPLATE_KINDS if kind in document]
    if len(kinds) != 1:
        raise ValueError(f"a template holds exactly one of {TEMPLATE_KINDS}, found {kinds or 'none'}")
    return kinds[0]


def schema_errors(path: Path, *, template: bool) -> list[str]:
    """Every schema violation in the file, as 'file: at <json path>: message' lines."""
    document = hoist_expressions(load_yaml(path))
    definition = f"{template_kind(document)}Template" if template else None
    validator = validator_for(definition)
    errors = []
    for error in validator.iter_errors(document):
        # anyOf failures nest the real reason; report the most specific one of each.
        best = jsonschema.exceptions.best_match([error])
        where = "/".join(str(p) for p in best.absolute_path) or "<root>"
        errors.append(f"{path.name}: at {where}: {best.message}")
    return errors
