"""The model card: what a published model version is, recorded once at publish time and never changed.

A card holds the ONNX signature (every input and output: name, datatype, shape with symbolic
dimensions), opset and producer, size and sha256 of the model file, and optionally the metrics a
data scientist measured (with the evaluation data set's name and sha256) and the training commit.
It is stored beside the model (`<name>/<version>/model.card.json`) and its own sha256 is recorded in
the model object's metadata, so neither can change without the other noticing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CARD_FILE = "model.card.json"
CARD_SCHEMA = "ai-app/model-card/v1"
# Bounded on read: a card is a few KiB; anything far larger is not one of ours.
MAX_CARD_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

# ONNX TensorProto element types -> Open Inference Protocol datatypes (the names clients see).
_ONNX_ELEM_TYPES = {
    1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "BYTES",
    9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16",
}


class ModelCardError(ValueError):
    """A card, a metrics file or a model that cannot be described; the message says what and where."""


@dataclass(frozen=True)
class TensorSignature:
    """One input or output. Dimensions are ints (fixed) or strings (symbolic, e.g. "batch"); "?" is unnamed."""

    name: str
    datatype: str
    shape: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.name} {self.datatype}[{', '.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    sha256: str
    size: int
    inputs: tuple[TensorSignature, ...]
    outputs: tuple[TensorSignature, ...]
    opset: dict[str, int] = field(default_factory=dict)
    producer: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    dataset: dict[str, str] | None = None   # {"name": ..., "sha256": ...}: what the metrics were measured on
    source: str | None = None               # the training commit (URL or sha)

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["inputs"] = [dict(t, shape=list(t["shape"])) for t in body["inputs"]]
        body["outputs"] = [dict(t, shape=list(t["shape"])) for t in body["outputs"]]
        return {"schema": CARD_SCHEMA, **body}

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, fixed separators): the same card always has the same digest."""
        return (json.dumps(self.as_dict(), sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()


def _dims(tensor_type: Any) -> tuple[int | str, ...]:
    dims: list[int | str] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return tuple(dims)


def _signature(values: Any, initializers: set[str], path: Path) -> tuple[TensorSignature, ...]:
    tensors = []
    for value in values:
        if value.name in initializers:   # an input with a default (an initializer): not part of the API
            continue
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise ModelCardError(f"{path}: {value.name!r} is a {kind}, not a tensor (not servable over V2)")
        elem = value.type.tensor_type.elem_type
        datatype = _ONNX_ELEM_TYPES.get(elem)
        if datatype is None:
            raise ModelCardError(f"{path}: {value.name!r} has ONNX element type {elem}, not a V2 datatype")
        tensors.append(TensorSignature(value.name, datatype, _dims(value.type.tensor_type)))
    return tuple(tensors)


def describe_onnx(path: Path) -> tuple[tuple[TensorSignature, ...], tuple[TensorSignature, ...], dict[str, int], str]:
    """(inputs, outputs, opset per domain, producer) read from the ONNX graph; ModelCardError if not ONNX."""
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ModuleNotFoundError as exc:   # the serving image has no onnx: cards are made where models are published
        raise ModelCardError(f"describing a model needs the onnx package ({exc.name} is missing)") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise ModelCardError(f"{path}: not an ONNX model ({exc})") from None
    if not model.graph.output:
        raise ModelCardError(f"{path}: not an ONNX model (the graph has no outputs)")
    initializers = {init.name for init in model.graph.initializer}
    opset = {(entry.domain or "ai.onnx"): int(entry.version) for entry in model.opset_import}
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return (_signature(model.graph.input, initializers, path), _signature(model.graph.output, set(), path),
            opset, producer)


def load_metrics(path: Path) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, dataset) from a metrics file: {"dataset": {"name", "sha256"}, "metrics": {name: number}}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelCardError(f"{path}: cannot read the metrics file: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path}: the metrics file is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ModelCardError(f"{path}: the metrics file must be a JSON object with 'dataset' and 'metrics'")
    dataset = doc.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str) or not dataset["name"].strip():
        raise ModelCardError(f"{path}: 'dataset.name' is missing: name the evaluation data set the metrics "
                             "were measured on")
    digest = str(dataset.get("sha256", "")).lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise ModelCardError(f"{path}: 'dataset.sha256' must be the evaluation data set's sha256 (64 hex "
                             f"characters), got {dataset.get('sha256')!r}")
    return _metrics(doc.get("metrics"), f"{path}: 'metrics'"), {"name": dataset["name"].strip(), "sha256": digest}


def _metrics(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise ModelCardError(f"{where} must be a non-empty object of metric name -> number")
    metrics = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise ModelCardError(f"{where}: {name!r} is not a metric name (letters, digits, '_', '.', '-')")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ModelCardError(f"{where}.{name}: expected a finite number, got {value!r}")
        metrics[name] = float(value)
    return metrics


def build_card(path: Path, *, name: str, version: str, sha256: str, metrics_file: Path | None = None,
               source: str | None = None) -> ModelCard:
    inputs, outputs, opset, producer = describe_onnx(path)
    metrics, dataset = load_metrics(metrics_file) if metrics_file else ({}, None)
    return ModelCard(name=name, version=version, sha256=sha256, size=path.stat().st_size, inputs=inputs,
                     outputs=outputs, opset=opset, producer=producer, metrics=metrics, dataset=dataset,
                     source=(source or "").strip() or None)


def _tensors(raw: Any, where: str) -> tuple[TensorSignature, ...]:
    if not isinstance(raw, list):
        raise ModelCardError(f"{where} must be a list")
    tensors = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not isinstance(item.get("datatype"), str) or not isinstance(item.get("shape"), list):
            raise ModelCardError(f"{at} needs name, datatype and shape")
        shape = item["shape"]
        if not all(isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
            raise ModelCardError(f"{at}.shape: dimensions are integers or names")
        tensors.append(TensorSignature(item["name"], item["datatype"], tuple(shape)))
    return tuple(tensors)


def parse_card(data: bytes, where: str) -> ModelCard:
    """A card from its stored bytes; ModelCardError says what is malformed."""
    if len(data) > MAX_CARD_BYTES:
        raise ModelCardError(f"{where}: {len(data)} bytes is too large for a model card")
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{where}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != CARD_SCHEMA:
        raise ModelCardError(f"{where}: not a model card (schema is not {CARD_SCHEMA!r})")
    try:
        digest = str(doc["sha256"])
        if not _SHA256.match(digest):
            raise ModelCardError(f"{where}: sha256 must be 64 lower-case hex characters")
        dataset = doc.get("dataset")
        if dataset is not None and not (isinstance(dataset, dict) and _SHA256.match(str(dataset.get("sha256")))):
            raise ModelCardError(f"{where}: dataset needs a name and a sha256")
        return ModelCard(
            name=str(doc["name"]), version=str(doc["version"]), sha256=digest, size=int(doc["size"]),
            inputs=_tensors(doc["inputs"], f"{where}: inputs"), outputs=_tensors(doc["outputs"], f"{where}: outputs"),
            opset={str(k): int(v) for k, v in (doc.get("opset") or {}).items()},
            producer=str(doc.get("producer") or ""),
            metrics=_metrics(doc["metrics"], f"{where}: metrics") if doc.get("metrics") else {},
            dataset={"name": str(dataset["name"]), "sha256": str(dataset["sha256"])} if dataset else None,
            source=doc.get("source") or None,
        )
    except KeyError as exc:
        raise ModelCardError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelCardError):
            raise
        raise ModelCardError(f"{where}: {exc}") from None


def signature_matches(card: ModelCard, inputs: Mapping[str, tuple[str, tuple[int, ...]]],
                      outputs: Mapping[str, tuple[str, tuple[int, ...]]]) -> list[str]:
    """Differences between the card and what the runtime loaded ({name: (datatype, shape with -1 dynamic)})."""
    problems = []
    for kind, recorded, loaded in (("input", card.inputs, inputs), ("output", card.outputs, outputs)):
        by_name = {t.name: t for t in recorded}
        if set(by_name) != set(loaded):
            problems.append(f"{kind}s: the card says {sorted(by_name)}, the model has {sorted(loaded)}")
            continue
        for name, (datatype, shape) in loaded.items():
            expected_shape = tuple(d if isinstance(d, int) else -1 for d in by_name[name].shape)
            if by_name[name].datatype != datatype or expected_shape != tuple(shape):
                problems.append(f"{kind} {name}: the card says {by_name[name].describe()}, "
                                f"the model has {datatype}{list(shape)}")
    return problems
