"""Compile-time processing, as Azure Pipelines does before a run starts: templates included from
`steps`/`jobs`/`stages`/`variables` lists (paths relative to the including file), parameters checked against
the template's declarations (an undeclared or missing required parameter fails the run, as Azure does),
`${{ }}` expressions substituted, and `${{ if }}`/`${{ elseif }}`/`${{ else }}`/`${{ each }}` directives applied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.pipelines.azure_schema import load_yaml
from tests.pipelines.harness.expressions import ExpressionError, evaluate_text, to_string

TEMPLATE_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
LIST_KINDS = ("steps", "jobs", "stages", "variables")
EACH_KEY = "\0each"     # where the loop variables of `${{ each }}` travel with the parameters


class TemplateError(ValueError):
    pass


def parameter_values(declared: Any, passed: dict[str, Any], where: str) -> dict[str, Any]:
    """The values of a template's (or pipeline's) parameters: passed ones typed, defaults otherwise."""
    values: dict[str, Any] = {}
    declarations = declared or []
    if isinstance(declarations, dict):   # the old `parameters: {name: default}` form
        declarations = [{"name": k, "default": v} for k, v in declarations.items()]
    names = {d["name"] for d in declarations}
    unknown = sorted(set(passed) - names)
    if unknown:
        raise TemplateError(f"{where}: unexpected parameter(s) {', '.join(unknown)}")
    for declaration in declarations:
        name, kind = declaration["name"], declaration.get("type", "string")
        if name in passed:
            value = passed[name]
        elif "default" in declaration:
            value = declaration["default"]
        else:
            raise TemplateError(f"{where}: a value for the required parameter '{name}' was not provided")
        if kind == "boolean" and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise TemplateError(f"{where}: parameter '{name}' is boolean, got {value!r}")
            value = value.lower() == "true"
        if kind == "number" and isinstance(value, str):
            value = float(value) if "." in value else int(value)
        if "values" in declaration and to_string(value) not in [to_string(v) for v in declaration["values"]]:
            raise TemplateError(f"{where}: parameter '{name}' must be one of {declaration['values']}")
        values[name] = value
    return values


class Expander:
    def __init__(self, variables: dict[str, Any] | None = None) -> None:
        self.variables = variables if variables is not None else {}

    def context(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters, compile-time variables and the variables of enclosing `${{ each }}` loops."""
        loops = params.get(EACH_KEY, {})
        return {**loops, "parameters": {k: v for k, v in params.items() if k != EACH_KEY},
                "variables": self.variables}

    def value(self, node: Any, params: dict[str, Any], base: Path) -> Any:
        context = self.context(params)
        if isinstance(node, str):
            return self._string(node, context)
        if isinstance(node, list):
            return self._list(node, params, base, None)
        if isinstance(node, dict):
            return self._mapping(node, params, base)
        return node

    def _string(self, text: str, context: dict[str, Any]) -> Any:
        whole = TEMPLATE_EXPR.fullmatch(text.strip())
        try:
            if whole and text.strip().count("${{") == 1:
                return evaluate_text(whole.group(1), context)
            return TEMPLATE_EXPR.sub(lambda m: to_string(evaluate_text(m.group(1), context)), text)
        except ExpressionError as error:
            raise TemplateError(f"{text!r}: {error}") from error

    def _directive(self, key: str) -> tuple[str, str] | None:
        match = re.fullmatch(r"\$\{\{\s*(if|elseif|else|each)\b(.*?)\}\}", key.strip(), re.S)
        return (match.group(1), match.group(2).strip()) if match else None

    def _branches(self, items: list[tuple[str, Any]], params: dict[str, Any], base: Path):
        """Yields the content of each directive that applies, in order (if/elseif/else chains, each)."""
        context = self.context(params)
        chain_taken: bool | None = None
        for key, content in items:
            directive = self._directive(key)
            assert directive is not None
            kind, expr = directive
            if kind == "if":
                chain_taken = bool(evaluate_text(expr, context))
                if chain_taken:
                    yield content, params
            elif kind == "elseif":
                if chain_taken is None:
                    raise TemplateError(f"{key}: elseif without if")
                if not chain_taken and evaluate_text(expr, context):
                    chain_taken = True
                    yield content, params
            elif kind == "else":
                if chain_taken is None:
                    raise TemplateError(f"{key}: else without if")
                if not chain_taken:
                    yield content, params
                chain_taken = None
            else:
                name, _, collection = expr.partition(" in ")
                for item in evaluate_text(collection.strip(), context) or []:
                    yield content, {**params, EACH_KEY: {**params.get(EACH_KEY, {}), name.strip(): item}}

    def _mapping(self, node: dict[str, Any], params: dict[str, Any], base: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pending: list[tuple[str, Any]] = []
        for key, value in node.items():
            if isinstance(key, str) and self._directive(key):
                pending.append((key, value))
                continue
            for content, scope in self._branches(pending, params, base):
                out.update(self.value(content, scope, base) or {})
            pending = []
            out[self.value(key, params, base)] = self.value(value, params, base)
        for content, scope in self._branches(pending, params, base):
            out.update(self.value(content, scope, base) or {})
        return out

    def _list(self, node: list[Any], params: dict[str, Any], base: Path, kind: str | None) -> list[Any]:
        out: list[Any] = []
        pending: list[tuple[str, Any]] = []

        def flush() -> None:
            for content, scope in self._branches(pending, params, base):
                out.extend(self._list(content if isinstance(content, list) else [content], scope, base, kind))
            pending.clear()

        for item in node:
            if isinstance(item, dict) and len(item) == 1 and self._directive(next(iter(item))):
                pending.append(next(iter(item.items())))
                continue
            flush()
            if isinstance(item, dict) and "template" in item and not _is_step_task(item):
                out.extend(self.include(item, params, base))
            else:
                out.append(self.value(item, params, base))
        flush()
        return out

    def include(self, item: dict[str, Any], params: dict[str, Any], base: Path) -> list[Any]:
        target = self._string(item["template"], self.context(params))
        if "@" in target:
            raise TemplateError(f"{target}: templates from other repositories are not supported by the harness")
        path = (base / target).resolve()
        if not path.is_file():
            raise TemplateError(f"{base / target}: template not found")
        passed = self.value(item.get("parameters") or {}, params, base)
        document = load_yaml(path)
        kind = next((k for k in LIST_KINDS if k in document), None)
        if kind is None:
            raise TemplateError(f"{path}: not a steps/jobs/stages/variables template")
        values = parameter_values(document.get("parameters"), passed, str(path))
        body = document[kind]
        if kind == "variables" and isinstance(body, dict):
            body = [{"name": k, "value": v} for k, v in body.items()]
        return self._list(body, values, path.parent, kind)


def _is_step_task(item: dict[str, Any]) -> bool:
    return any(k in item for k in ("task", "bash", "script", "checkout", "pwsh", "powershell"))


def variable_list(node: Any) -> list[dict[str, Any]]:
    """`variables:` as a list of {name, value} / {group} / {template} entries (the mapping form too)."""
    if node is None:
        return []
    if isinstance(node, dict):
        return [{"name": k, "value": v} for k, v in node.items()]
    return list(node)


def expand_pipeline(path: Path, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline as Azure sees it after compile time. Compile-time `variables.x` are the YAML-defined
    pipeline variables (groups are runtime only), processed in order so later values can use earlier ones."""
    document = load_yaml(path)
    base = path.parent
    params = parameter_values(document.get("parameters"), parameters or {}, str(path))
    expander = Expander()
    variables: list[dict[str, Any]] = []
    for entry in variable_list(document.get("variables")):
        for resolved in expander._list([entry], params, base, "variables"):
            variables.append(resolved)
            if "name" in resolved:
                expander.variables[resolved["name"]] = resolved.get("value", "")
    out: dict[str, Any] = {}
    for key, value in document.items():
        if key == "variables":
            out[key] = variables
        elif key == "parameters":
            out[key] = document[key]
        else:
            out[key] = expander.value(value, params, base)
    out["__parameters__"] = params
    return out
