"""Load one ONNX model, verified by sha256, and run it with onnxruntime (never pickle)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from app.datatypes import BY_ORT_TYPE
from app.modelstore.digest import READ_BYTES, normalize_sha256

if TYPE_CHECKING:
    from app.modelcard import ModelCard


class ModelError(Exception):
    """The model file cannot be served (missing, unreadable, not ONNX, unsupported types)."""


class ModelDigestMismatch(ModelError):
    """The model file's sha256 is not the one the deployment pinned."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(f"{path}: sha256 mismatch: expected {expected}, actual {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the V2 protocol describes it."""

    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 where the dimension is dynamic
    dtype: np.dtype

    def metadata(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def read_verified(path: Path, expected_sha256: str | None) -> tuple[bytes, str]:
    """Read the file once, hashing it in chunks, so the bytes loaded are the bytes verified.

    (modelstore.digest.file_sha256 hashes without keeping the bytes; loading the path afterwards
    would leave a window in which the file could change.)
    """
    digest = hashlib.sha256()
    chunks = []
    try:
        with path.open("rb") as f:
            while chunk := f.read(READ_BYTES):
                digest.update(chunk)
                chunks.append(chunk)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file: {exc.strerror or exc}") from None
    actual = digest.hexdigest()
    if expected_sha256 is not None:
        try:
            expected = normalize_sha256(expected_sha256, "expected sha256")
        except ValueError as exc:
            raise ModelError(f"{path}: {exc}") from None
        if actual != expected:
            raise ModelDigestMismatch(path, expected, actual)
    return b"".join(chunks), actual


def _tensor_spec(node: ort.NodeArg, path: Path) -> TensorSpec:
    try:
        datatype = BY_ORT_TYPE[node.type]
    except KeyError:
        hint = ""
        if node.type.startswith("seq(map"):
            hint = " (a skl2onnx classifier converted with ZipMap; convert with options={'zipmap': False})"
        raise ModelError(f"{path}: tensor {node.name!r} has type {node.type}, not a V2 tensor{hint}") from None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype.name, shape, datatype.dtype)


class OnnxModel:
    """An onnxruntime session plus the V2 metadata of its inputs and outputs."""

    def __init__(
        self,
        model_bytes: bytes,
        *,
        path: Path,
        name: str,
        version: str,
        sha256: str,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
    ) -> None:
        self.path = path
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        # Kept only when a forked worker must rebuild its session (see reopen_after_fork).
        self._model_bytes: bytes | None = model_bytes if self.needs_reopen_after_fork else None
        self.session = self._new_session(model_bytes)
        self.inputs = {n.name: _tensor_spec(n, path) for n in self.session.get_inputs()}
        self.outputs = {n.name: _tensor_spec(n, path) for n in self.session.get_outputs()}
        self.output_names = list(self.outputs)
        # One RunOptions for every run: with None, onnxruntime builds a default one per call, a
        # cost that shows under load (docs/serving.md). Run() only reads it (const RunOptions&), so
        # threads may share it; nothing here sets its terminate flag, which would stop every run.
        self._run_options = ort.RunOptions()
        self.card: ModelCard | None = None   # set by attach_card when a verified card lies beside the model

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        name: str,
        version: str,
        expected_sha256: str | None = None,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
    ) -> OnnxModel:
        """Verify and load the model; raise ModelDigestMismatch or ModelError with the reason."""
        path = Path(path)
        model_bytes, sha256 = read_verified(path, expected_sha256)
        return cls(
            model_bytes,
            path=path,
            name=name,
            version=version,
            sha256=sha256,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
        )

    @property
    def needs_reopen_after_fork(self) -> bool:
        # With one thread onnxruntime creates no thread pool, so a session made before fork is safe to
        # share copy-on-write; pool threads do not survive fork(), so a pooled session must be rebuilt.
        return self.intra_op_threads > 1 or self.inter_op_threads > 1

    def _new_session(self, model_bytes: bytes) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if self.inter_op_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn the CPU other workers need on a small pod.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelError(f"{self.path}: not a loadable ONNX model: {exc}") from None

    def reopen_after_fork(self) -> None:
        """Rebuild the session in a forked worker when it owns thread pools."""
        if self._model_bytes is not None:
            self.session = self._new_session(self._model_bytes)

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        return self.session.run(output_names, feeds, self._run_options)

    def attach_card(self) -> None:
        """Read the model card fetch-model wrote beside the model, if any, and check it describes this model.

        A card that names other bytes or another signature is refused (ModelError): the figures a client
        reads from the metadata must be the ones of the model that answers.
        """
        from app.modelcard import CARD_FILE, ModelCardError, parse_card, signature_matches

        card_path = self.path.parent / CARD_FILE
        if not card_path.is_file():
            return
        try:
            card = parse_card(card_path.read_bytes(), str(card_path))
        except (OSError, ModelCardError) as exc:
            raise ModelError(f"{card_path}: {exc}") from None
        if card.sha256 != self.sha256:
            raise ModelError(f"{card_path}: the card describes sha256 {card.sha256}, the model is {self.sha256}")
        problems = signature_matches(
            card, {n: (s.datatype, s.shape) for n, s in self.inputs.items()},
            {n: (s.datatype, s.shape) for n, s in self.outputs.items()})
        if problems:
            raise ModelError(f"{card_path}: the card does not match the model: {'; '.join(problems)}")
        self.card = card

    def card_summary(self) -> dict[str, object] | None:
        """What clients need from the card: version, sha256, metrics and what they were measured on."""
        if self.card is None:
            return None
        return {"version": self.card.version, "sha256": self.card.sha256, "metrics": self.card.metrics,
                "dataset": self.card.dataset, "source": self.card.source, "producer": self.card.producer}

    def metadata(self) -> dict[str, object]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.metadata() for spec in self.inputs.values()],
            "outputs": [spec.metadata() for spec in self.outputs.values()],
        }
