"""The Azure Pipelines expression language: `${{ }}` template expressions, `$[ ]` runtime expressions and
`condition:` values share one grammar (literals, property dereference with `.name` and `['name']`, function
calls). Semantics follow Microsoft's "Expressions" reference: comparisons convert the right operand to the
left's type, string comparisons ignore case, `and`/`or` short-circuit, a missing property is Null.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ExpressionError(ValueError):
    pass


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w\-]*)"
                    r"|(?P<punct>[()\[\],.]))")


@dataclass
class _Ref:
    """A property path (variables.x, dependencies.A.outputs['s.v']) resolved lazily by the evaluator."""
    parts: list[Any]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExpressionError(f"unexpected character at {pos} in expression {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'a token'} in expression {self.text!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        node = self.expr()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in expression {self.text!r}")
        return node

    def expr(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return ("lit", value[1:-1].replace("''", "'"))
        if kind == "num":
            return ("lit", float(value) if "." in value else int(value))
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r} in expression {self.text!r}")
        lowered = value.lower()
        if lowered in ("true", "false") and (self.peek() is None or self.peek()[1] != "("):
            return ("lit", lowered == "true")
        if lowered == "null":
            return ("lit", None)
        if self.peek() and self.peek()[1] == "(":
            self.take("(")
            args = []
            if self.peek() and self.peek()[1] != ")":
                args.append(self.expr())
                while self.peek() and self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            return ("call", lowered, args)
        parts: list[Any] = [value]
        while self.peek() and self.peek()[1] in (".", "["):
            if self.take()[1] == ".":
                parts.append(self.take()[1])
            else:
                parts.append(self.expr())
                self.take("]")
        return ("ref", parts)


def parse(text: str) -> Any:
    return _Parser(text).parse()


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value != ""
    if isinstance(value, (int, float)):
        return value != 0
    return bool(value)


def _coerce(left: Any, right: Any) -> tuple[Any, Any]:
    """The right operand converted to the left's type (Microsoft: "type casting")."""
    if isinstance(left, bool):
        if isinstance(right, str):
            return left, right.strip().lower() == "true"
        return left, to_bool(right)
    if isinstance(left, (int, float)):
        try:
            return left, float(right)
        except (TypeError, ValueError):
            return left, float("nan")
    if isinstance(left, str):
        return left.lower(), to_string(right).lower()
    return left, right


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return (a is None and b is None) or (a is None and b == "") or (b is None and a == "")
    left, right = _coerce(a, b)
    return left == right


StatusFn = Callable[[str, list[Any]], bool]


def evaluate(node: Any, context: Mapping[str, Any], status: StatusFn | None = None) -> Any:
    """Evaluates a parsed expression. `context` maps top-level names (variables, parameters, dependencies,
    stageDependencies) to dicts; lookups ignore case. `status` answers succeeded()/failed()/always()... ."""
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "ref":
        return _lookup(context, [p if isinstance(p, str) else to_string(evaluate(p, context, status))
                                 for p in node[1]])
    name, args = node[1], node[2]
    if name in ("succeeded", "failed", "succeededorfailed", "always", "canceled"):
        if status is None:
            raise ExpressionError(f"{name}() is not available in template expressions")
        return status(name, [to_string(evaluate(a, context, status)) for a in args])
    if name == "and":
        return all(to_bool(evaluate(a, context, status)) for a in args)
    if name == "or":
        return any(to_bool(evaluate(a, context, status)) for a in args)
    values = [evaluate(a, context, status) for a in args]
    match name:
        case "not":
            return not to_bool(values[0])
        case "eq":
            return _eq(values[0], values[1])
        case "ne":
            return not _eq(values[0], values[1])
        case "gt" | "lt" | "ge" | "le":
            left, right = _coerce(values[0], values[1])
            return {"gt": left > right, "lt": left < right, "ge": left >= right, "le": left <= right}[name]
        case "in":
            return any(_eq(values[0], v) for v in values[1:])
        case "notin":
            return not any(_eq(values[0], v) for v in values[1:])
        case "contains":
            return to_string(values[1]).lower() in to_string(values[0]).lower()
        case "startswith":
            return to_string(values[0]).lower().startswith(to_string(values[1]).lower())
        case "endswith":
            return to_string(values[0]).lower().endswith(to_string(values[1]).lower())
        case "coalesce":
            return next((v for v in values if v not in (None, "")), "")
        case "iif":
            return values[1] if to_bool(values[0]) else values[2]
        case "lower":
            return to_string(values[0]).lower()
        case "upper":
            return to_string(values[0]).upper()
        case "replace":
            return to_string(values[0]).replace(to_string(values[1]), to_string(values[2]))
        case "format":
            out = to_string(values[0])
            for index, value in enumerate(values[1:]):
                out = out.replace("{" + str(index) + "}", to_string(value))
            return out
        case "join":
            return to_string(values[0]).join(to_string(v) for v in (values[1] or []))
        case "length":
            return len(values[0] or "")
    raise ExpressionError(f"unknown function {name}()")


def _lookup(context: Mapping[str, Any], parts: list[str]) -> Any:
    node: Any = context
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        match = next((key for key in node if key.lower() == part.lower()), None)
        if match is None:
            return None
        node = node[match]
    return node


def evaluate_text(text: str, context: Mapping[str, Any], status: StatusFn | None = None) -> Any:
    return evaluate(parse(text), context, status)
