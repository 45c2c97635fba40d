"""The release pin in an environment's values.yaml: read it, and change only its scalars, byte for byte.

ruamel.yaml's round-trip dump would re-flow long lines and re-indent; instead each pinned scalar is
replaced in place at the line/column ruamel reports, so comments, order, quoting and blank lines stay.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.errors import BadInput, EnvbotError
from bot.yamlfile import BOM, compose_yaml, load_yaml, read_text

IMAGE_KEYS = ("repository", "tag", "digest")
MODEL_KEYS = ("source", "name", "version", "uri", "sha256")
PINNED = {"image": IMAGE_KEYS, "model": MODEL_KEYS}
# The chart pin lives in the environment's chart file, a Flux OCIRepository: spec.url, spec.ref.{tag,digest}.
CHART_KEYS = ("repository", "version", "digest")
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./:@+-]+$")
# Anchors, aliases, merge keys, tags: read_pin_fast leaves these to read_pin_text, which refuses them on
# pinned fields with their line (and counts an alias bomb before expanding it).
_FAST_UNSAFE = re.compile(r"[&*!]\w|<<\s*:")


@dataclass(frozen=True)
class ImagePin:
    repository: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class ModelPin:
    source: str = ""
    name: str = ""
    version: str = ""
    uri: str = ""
    sha256: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version} sha256:{self.sha256}" if self.sha256 else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ChartPin:
    repository: str = ""         # oci://<registry>/<path>/<chart name>
    version: str = ""            # the chart version, also its OCI tag
    digest: str = ""             # the OCI manifest digest: what deploys

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.version}" + (f"@{self.digest}" if self.digest else "")

    @property
    def label(self) -> str:
        return f"{self.repository}:{self.version}@{self.digest}" if self.digest else self.repository


@dataclass(frozen=True)
class ReleasePin:
    image: ImagePin
    model: ModelPin
    chart: ChartPin = ChartPin()     # empty: the environment has no chart file (policy's chart is used)

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"image": asdict(self.image), "model": asdict(self.model), "chart": asdict(self.chart)}


def _load(text: str, display: str) -> Any:
    return load_yaml(text, display)


def _section(doc: Any, key: str, display: str) -> dict:
    section = doc.get(key) if isinstance(doc, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise EnvbotError(f"{display}:{doc.lc.key(key)[0] + 1}: '{key}' must be a mapping")
    return section


def read_pin_text(text: str, display: str) -> ReleasePin:
    doc = _load(text, display)
    if doc is not None and not isinstance(doc, dict):
        raise EnvbotError(f"{display}:1: expected a mapping at the top level")
    image = _section(doc, "image", display)
    model = _section(doc, "model", display)
    return ReleasePin(
        image=ImagePin(**{k: "" if image.get(k) is None else str(image[k]) for k in IMAGE_KEYS}),
        model=ModelPin(**{k: "" if model.get(k) is None else str(model[k]) for k in MODEL_KEYS}),
    )


def read_pin_fast(text: str, display: str) -> ReleasePin:
    """read_pin_text's result through libyaml (about 30x faster), for comparing many files at once.

    Only a plain mapping whose pinned values are all strings takes this path; anything else (a
    number, a date, a YAML error, an odd shape) goes through read_pin_text, which reads YAML 1.2 and
    reports errors with their line. Duplicate keys are not detected here: writes re-read strictly.
    """
    import yaml

    if _FAST_UNSAFE.search(text):
        return read_pin_text(text, display)
    try:
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return read_pin_text(text, display)
    sections = [doc.get(name) if isinstance(doc, dict) else None for name in ("image", "model")]
    if not isinstance(doc, dict) or not all(isinstance(sec, dict | None) for sec in sections):
        return read_pin_text(text, display)
    image, model = (sec or {} for sec in sections)
    values = [image.get(k) for k in IMAGE_KEYS] + [model.get(k) for k in MODEL_KEYS]
    if not all(v is None or isinstance(v, str) for v in values):
        return read_pin_text(text, display)
    return ReleasePin(image=ImagePin(**{k: image.get(k) or "" for k in IMAGE_KEYS}),
                      model=ModelPin(**{k: model.get(k) or "" for k in MODEL_KEYS}))


def read_pin(path: Path, display: str | None = None) -> ReleasePin:
    display = display or str(path)
    if not path.is_file():
        raise EnvbotError(f"{display}: no such values file")
    return read_pin_text(read_text(path, display), display)


def _render_scalar(value: str, old_text: str) -> str:
    """The new scalar in the style of the old one; plain only when it stays a string in YAML."""
    if old_text.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    if (not old_text.startswith('"') and value and _PLAIN_SAFE.match(value)
            and YAML(typ="safe").load(value) == value):
        return value
    return json.dumps(value)


def _find(mapping: MappingNode, key: str) -> tuple[Node, Node] | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key and not key_node.tag.endswith(":merge"):
            return key_node, value_node
    return None


def _references(root: Node) -> dict[int, int]:
    """How many times each node is referenced: more than once means an alias points at it."""
    counts: dict[int, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        counts[id(node)] = counts.get(id(node), 0) + 1
        if counts[id(node)] > 1:
            continue
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                stack += [key_node, value_node]
        elif isinstance(node, SequenceNode):
            stack += node.value
    return counts


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _refuse_shared(node: Node, refs: dict[int, int], display: str, what: str, line: int) -> None:
    """Editing an anchored or aliased node would change every place that shares it: refuse (LINE: its key)."""
    if getattr(node, "anchor", None):
        raise BadInput(f"{display}:{line}: {what} has the anchor &{node.anchor}; editing it would change "
                       f"every alias of it too: write {what} out in full (no anchors, aliases or merge keys)")
    if refs.get(id(node), 0) > 1:
        raise BadInput(f"{display}:{line}: {what} is an alias of another node; envbot edits only "
                       f"{what} written out in full (no anchors, aliases or merge keys)")


def _section_node(parent: MappingNode, name: str, refs: dict[int, int], display: str,
                  pinned: tuple[str, ...] = (), where: str | None = None) -> MappingNode:
    """The mapping under NAME in PARENT (WHERE: its dotted path), refusing anchors, aliases and merge keys."""
    where = where or name
    found = _find(parent, name)
    if found is None:
        merge = next((k for k, _ in parent.value if k.tag.endswith(":merge")), None)
        if merge is not None:
            raise BadInput(f"{display}:{_line(merge)}: '{where}' comes from a YAML merge key (<<); write "
                           f"{where}: out in full so envbot can pin it")
        raise BadInput(f"{display}: no '{where}:' mapping to pin (add {name}: with its keys)")
    key_node, section = found
    if not isinstance(section, MappingNode):
        raise BadInput(f"{display}:{_line(key_node)}: '{where}' must be a mapping")
    _refuse_shared(section, refs, display, f"'{where}'", _line(key_node))
    for field_key, field_value in section.value:
        if field_key.tag.endswith(":merge"):
            raise BadInput(f"{display}:{_line(field_key)}: '{where}' has a YAML merge key (<<); envbot edits "
                           f"only {where}: written out in full (no anchors, aliases or merge keys)")
        if isinstance(field_key, ScalarNode) and field_key.value in pinned:
            _refuse_shared(field_value, refs, display, f"{where}.{field_key.value}", _line(field_key))
    return section


def _line_end(text: str, index: int) -> int:
    """Index just after the line break of the line holding INDEX (len(text) on the last line)."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _newline_near(text: str, index: int) -> str:
    end = _line_end(text, index)
    return "\r\n" if text[max(end - 2, 0):end] == "\r\n" else "\n"


def _set_field(text: str, section_path: str | tuple[str, ...], key: str, value: str, display: str) -> str:
    """TEXT with SECTION.KEY set to VALUE (SECTION a top-level key or a path of nested keys): a splice at
    the scalar's exact position; everything else kept."""
    root = compose_yaml(text, display)
    if not isinstance(root, MappingNode):
        raise BadInput(f"{display}:1: expected a mapping at the top level")
    refs = _references(root)
    names = (section_path,) if isinstance(section_path, str) else section_path
    section, section_where = root, ""
    for index, name in enumerate(names):
        section_where = f"{section_where}.{name}" if section_where else name
        last = index == len(names) - 1
        pinned = PINNED.get(section_where, (key,)) if last else ()
        section = _section_node(section, name, refs, display, pinned, section_where)
    found = _find(section, key)
    where = f"{section_where}.{key}"
    if found is None:
        if not value:
            return text
        return _insert_field(text, section, key, value, display, section_where)
    key_node, node = found
    if not isinstance(node, ScalarNode):
        raise BadInput(f"{display}:{_line(key_node)}: {where} must be a scalar")
    is_null = node.tag.endswith(":null")
    current = "" if is_null else node.value
    if current == value:
        return text
    start, end = node.start_mark.index, node.end_mark.index
    if is_null and start == end:
        # `key:` with nothing after it: the value goes right after the colon.
        colon = text.index(":", key_node.end_mark.index) + 1
        return text[:colon] + " " + json.dumps(value) + text[colon:]
    if node.start_mark.line != node.end_mark.line:
        raise BadInput(f"{display}:{_line(node)}: {where} spans several lines; write it on one line")
    return text[:start] + _render_scalar(value, text[start:end]) + text[end:]


def _insert_field(text: str, section: MappingNode, key: str, value: str, display: str, where: str) -> str:
    if not section.value:
        raise BadInput(f"{display}:{_line(section)}: {where} is empty; add the {where}.{key} key")
    last_key, last_value = section.value[-1]
    if section.flow_style:
        # {a: 1, b: 2} -> {a: 1, b: 2, key: "value"}
        at = last_value.end_mark.index
        return text[:at] + f", {key}: {json.dumps(value)}" + text[at:]
    if not isinstance(last_value, ScalarNode):
        raise BadInput(f"{display}:{_line(last_key)}: {where}.{key} is missing; add it")
    column = section.value[0][0].start_mark.column
    at = _line_end(text, last_value.end_mark.index)
    newline = _newline_near(text, last_value.end_mark.index)
    prefix = "" if at == 0 or text[at - 1] == "\n" else newline
    return text[:at] + prefix + " " * column + f"{key}: {json.dumps(value)}" + newline + text[at:]


def edit_pin_text(text: str, pin: ReleasePin, display: str) -> str:
    """TEXT with the image and model scalars set to PIN; every other byte (line endings, BOM) unchanged.

    Pinned fields that are anchors, aliases or come from merge keys are refused: editing one would
    silently change every place sharing it.
    """
    bom = BOM if text.startswith(BOM) else ""
    body = text[len(bom):]
    for section_name, section_pin in (("image", pin.image), ("model", pin.model)):
        wanted = {f.name: getattr(section_pin, f.name) for f in fields(section_pin)}
        if section_name == "model" and not any(wanted.values()):
            continue
        # Re-compose after each edit so the next field's position is exact.
        for key, value in wanted.items():
            body = _set_field(body, section_name, key, value, display)
    written = read_pin_text(body, display)
    if written.image != pin.image or (any(asdict(pin.model).values()) and written.model != pin.model):
        raise BadInput(f"{display}: editing the pin did not round-trip; refusing to write it")
    return bom + body


# --- the chart pin: <env>/chart.yaml, a Flux OCIRepository whose spec.url/spec.ref envbot owns ----------

_CHART_FIELDS = (("repository", ("spec",), "url"), ("version", ("spec", "ref"), "tag"),
                 ("digest", ("spec", "ref"), "digest"))


def _chart_mapping(doc: Any, keys: tuple[str, ...], display: str) -> Any:
    node, where = doc, ""
    for key in keys:
        where = f"{where}.{key}" if where else key
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            line = f":{node.lc.key(key)[0] + 1}" if isinstance(node, dict) and key in node else ""
            raise EnvbotError(f"{display}{line}: '{where}' must be a mapping (the chart pin is an OCIRepository "
                              f"with spec.url and spec.ref.tag/digest)")
        node = child
    return node


def read_chart_pin_text(text: str, display: str) -> ChartPin:
    doc = _load(text, display)
    if not isinstance(doc, dict):
        raise EnvbotError(f"{display}:1: expected a mapping at the top level")
    if doc.get("kind") != "OCIRepository":
        raise EnvbotError(f"{display}: kind must be OCIRepository (the environment's chart pin), "
                          f"not {doc.get('kind')!r}")
    values = {}
    for name, keys, key in _CHART_FIELDS:
        mapping = _chart_mapping(doc, keys, display)
        value = mapping.get(key)
        if value is not None and not isinstance(value, str | int | float):
            raise EnvbotError(f"{display}:{mapping.lc.key(key)[0] + 1}: {'.'.join(keys)}.{key} must be a scalar")
        values[name] = "" if value is None else str(value)
    return ChartPin(**values)


def edit_chart_pin_text(text: str, chart: ChartPin, display: str) -> str:
    """TEXT with spec.url, spec.ref.tag and spec.ref.digest set to CHART; every other byte (line endings,
    BOM) unchanged; anchored or aliased fields are refused like the image and model pins."""
    read_chart_pin_text(text, display)   # the shape is right before anything is edited
    bom = BOM if text.startswith(BOM) else ""
    body = text[len(bom):]
    for name, keys, key in _CHART_FIELDS:
        body = _set_field(body, keys, key, getattr(chart, name), display)
    if read_chart_pin_text(body, display) != chart:
        raise BadInput(f"{display}: editing the chart pin did not round-trip; refusing to write it")
    return bom + body
