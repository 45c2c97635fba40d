"""The one way envbot reads YAML (values files, promotion.yaml, rendered manifests).

- Errors name the file and line: `values.yaml:5: malformed YAML: ...`.
- Alias bombs are refused before anything walks the document: the size of the document with every
  alias expanded is computed on the node graph (linear in the text) and must stay under a bound;
  recursive aliases are refused outright.
- Files are read as bytes and decoded as UTF-8 (a BOM is allowed), never through universal
  newlines, so the caller's edits can keep CRLF line endings byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from bot.errors import BadInput

# Far above any real values file or policy (a few hundred nodes), far below what hurts memory/CPU.
MAX_EXPANDED_NODES = 100_000
BOM = "\ufeff"


def _where(display: str, exc: YAMLError) -> str:
    # The context mark is where the broken construct starts (an unclosed "[" ...); else the problem's spot.
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    return f"{display}:{mark.line + 1}" if mark else display


def _check_expansion(root: Node | None, display: str) -> None:
    """Refuse documents whose alias expansion is larger than MAX_EXPANDED_NODES or recursive."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise BadInput(f"{display}:{node.start_mark.line + 1}: recursive YAML alias; refusing the file")
        active.add(key)
        total = 1
        if isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total += sum(size(item) for item in node.value)
        active.discard(key)
        sizes[key] = total
        if total > MAX_EXPANDED_NODES:
            raise BadInput(f"{display}:{node.start_mark.line + 1}: YAML aliases expand to more than "
                           f"{MAX_EXPANDED_NODES} nodes (an alias bomb?); refusing the file")
        return total

    if root is not None:
        try:
            size(root)
        except RecursionError as exc:
            raise BadInput(f"{display}: YAML nested too deeply; refusing the file") from exc


def compose_yaml(text: str, display: str) -> Node | None:
    """The node graph of TEXT (positions, anchors, aliases), checked against alias bombs."""
    try:
        root = YAML(typ="rt").compose(text.removeprefix(BOM))
    except YAMLError as exc:
        raise BadInput(f"{_where(display, exc)}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from exc
    except RecursionError as exc:
        raise BadInput(f"{display}: YAML nested too deeply; refusing the file") from exc
    _check_expansion(root, display)
    return root


def load_yaml(text: str, display: str, typ: str = "rt") -> Any:
    """TEXT parsed (round-trip objects with line numbers by default), after the alias-bomb check."""
    compose_yaml(text, display)
    try:
        return YAML(typ=typ).load(text.removeprefix(BOM))
    except YAMLError as exc:
        raise BadInput(f"{_where(display, exc)}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from exc
    except RecursionError as exc:
        raise BadInput(f"{display}: YAML nested too deeply; refusing the file") from exc


def read_text(path: Path, display: str) -> str:
    """A text file as it is on disk: UTF-8, line endings untouched (a leading BOM stays in the text)."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{display}: not UTF-8 text (byte {exc.start})") from exc


def write_text(path: Path, text: str) -> None:
    """Write TEXT exactly (no newline translation)."""
    path.write_bytes(text.encode("utf-8"))
