"""Does an ONNX file answer like the model it was converted from? (`ai-app check-model`)

Both are run on the same inputs and every ONNX output is compared with the reference's:
- float outputs: the largest absolute difference, and the rows whose values all lie within
  `atol + rtol * |expected|` (numpy.isclose);
- integer, boolean and string outputs (class labels): the rows that are equal.
An output agrees when every row does, unless `min_agreement` allows a share of disagreeing rows.

The reference is either a sample of inputs with the outputs they must give (.npz or .json), or
the original model: a pickle/joblib of a scikit-learn-API estimator (scikit-learn, XGBoost,
LightGBM), or a PyTorch TorchScript file. Loading a pickle or a PyTorch file runs code from it:
check only files you made or trust.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.model import ModelError, OnnxModel, TensorSpec

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5
DEFAULT_ROWS = 256
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TORCH_SUFFIXES = (".pt", ".pth", ".torchscript")
SAMPLE_SUFFIXES = (".npz", ".json")


class CheckError(Exception):
    """The check could not be made (unreadable file, inputs that do not fit the model, ...)."""


@dataclass(frozen=True)
class OutputComparison:
    name: str
    kind: str                    # "float" (tolerance) | "exact" (labels)
    rows: int
    agreeing_rows: int
    max_abs_diff: float | None   # None for exact outputs
    max_rel_diff: float | None
    passed: bool

    @property
    def agreement(self) -> float:
        return self.agreeing_rows / self.rows if self.rows else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "rows": self.rows, "agreement": self.agreement,
                "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff, "passed": self.passed}


@dataclass(frozen=True)
class CheckResult:
    model: Path
    reference: str
    rtol: float
    atol: float
    min_agreement: float
    outputs: list[OutputComparison] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # ONNX outputs the reference says nothing about

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    def as_dict(self) -> dict[str, Any]:
        return {"model": str(self.model), "reference": self.reference, "passed": self.passed,
                "rtol": self.rtol, "atol": self.atol, "min_agreement": self.min_agreement,
                "outputs": [o.as_dict() for o in self.outputs], "skipped": self.skipped}


def signature(model: OnnxModel) -> str:
    """`input FP32 [-1, 4] -> label INT64 [-1], probabilities FP32 [-1, 3]`."""
    def spec(s: TensorSpec) -> str:
        return f"{s.name} {s.datatype} [{', '.join(str(d) for d in s.shape)}]"
    return (", ".join(spec(s) for s in model.inputs.values()) + " -> "
            + ", ".join(spec(s) for s in model.outputs.values()))


def load_onnx(path: Path) -> OnnxModel:
    """The model as the server would load it (ModelError with the reason when it cannot)."""
    return OnnxModel.load(path, name=path.stem, version="check")


def compare(name: str, actual: np.ndarray, expected: np.ndarray, *, rtol: float, atol: float,
            min_agreement: float) -> OutputComparison:
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.size == expected.size and actual.shape != expected.shape:
        expected = expected.reshape(actual.shape)  # [n] vs [n, 1] for a regressor's output
    if actual.shape != expected.shape:
        raise CheckError(f"output {name!r}: the ONNX model gives shape {list(actual.shape)}, "
                         f"the reference {list(expected.shape)}")
    rows = actual.shape[0] if actual.ndim else 1
    row_axes = tuple(range(1, actual.ndim))
    if actual.dtype.kind == "f" or expected.dtype.kind == "f":
        a, e = actual.astype(np.float64), expected.astype(np.float64)
        close = np.isclose(a, e, rtol=rtol, atol=atol)
        agreeing = int(close.all(axis=row_axes).sum()) if actual.ndim else int(close)
        abs_diff = np.abs(a - e)
        max_abs = float(abs_diff.max()) if abs_diff.size else 0.0
        max_rel = float((abs_diff / np.maximum(np.abs(e), np.finfo(np.float64).tiny)).max()) if abs_diff.size else 0.0
        kind = "float"
    else:
        if actual.dtype.kind in "OSU" or expected.dtype.kind in "OSU":
            equal = actual.astype(str) == expected.astype(str)
        else:
            equal = actual == expected
        agreeing = int(equal.all(axis=row_axes).sum()) if actual.ndim else int(equal)
        max_abs = max_rel = None
        kind = "exact"
    passed = rows > 0 and agreeing >= min_agreement * rows
    return OutputComparison(name, kind, rows, agreeing, max_abs, max_rel, passed)


# --- inputs -------------------------------------------------------------------------------------


def _coerce(name: str, value: Any, spec: TensorSpec) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=spec.dtype)
    except (TypeError, ValueError) as exc:
        raise CheckError(f"input {name!r}: cannot be read as {spec.datatype}: {exc}") from None
    if len(spec.shape) != array.ndim or any(d not in (-1, n) for d, n in zip(spec.shape, array.shape, strict=False)):
        raise CheckError(f"input {name!r}: shape {list(array.shape)} does not fit the model's {list(spec.shape)}")
    return array


def read_arrays(path: Path) -> dict[str, Any]:
    """name -> array from an .npz, or from a .json object {"inputs": {...}, "outputs": {...}} flattened."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise CheckError(f"{path}: not a readable .npz file: {exc}") from None
    if path.suffix == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckError(f"{path}: not a readable JSON file: {exc}") from None
        if not isinstance(document, dict) or not all(isinstance(document.get(k, {}), dict)
                                                     for k in ("inputs", "outputs")):
            raise CheckError(f'{path}: expected {{"inputs": {{name: values}}, "outputs": {{name: values}}}}')
        arrays = {**document.get("inputs", {}), **document.get("outputs", {})}
        return arrays
    raise CheckError(f"{path}: samples must be .npz or .json, not {path.suffix or 'a file without suffix'}")


def model_inputs(model: OnnxModel, arrays: dict[str, Any], source: Path) -> dict[str, np.ndarray]:
    missing = [name for name in model.inputs if name not in arrays]
    if missing:
        raise CheckError(f"{source}: no values for the model's input(s) {missing} "
                         f"(it has {sorted(arrays)}); the model takes {signature(model)}")
    feeds = {name: _coerce(name, arrays[name], spec) for name, spec in model.inputs.items()}
    batch = {array.shape[0] for array in feeds.values() if array.ndim}
    if len(batch) > 1:
        raise CheckError(f"{source}: the inputs have different numbers of rows {sorted(batch)}")
    return feeds


def synthetic_inputs(model: OnnxModel, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal floats (small integers, booleans) of the model's shapes, `rows` on dynamic axes."""
    generator = np.random.default_rng(seed)
    feeds = {}
    for name, spec in model.inputs.items():
        shape = tuple(rows if d == -1 else d for d in spec.shape)
        if spec.dtype.kind == "f":
            feeds[name] = generator.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype.kind in "iu":
            feeds[name] = generator.integers(0, 10, shape).astype(spec.dtype)
        elif spec.dtype.kind == "b":
            feeds[name] = generator.integers(0, 2, shape).astype(bool)
        else:
            raise CheckError(f"input {name!r} is {spec.datatype}: give --inputs with real values")
    return feeds


# --- references ---------------------------------------------------------------------------------


def _load_pickle(path: Path) -> Any:
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    with path.open("rb") as f:
        return pickle.load(f)  # the user's own model: see the module docstring


def estimator_outputs(estimator: Any, model: OnnxModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A scikit-learn-API estimator's answers, matched to the ONNX outputs by kind: labels (integer or
    string outputs) <- predict(X); float outputs <- predict_proba(X) for a classifier, else predict(X)."""
    if len(feeds) != 1:
        raise CheckError(f"the ONNX model has {len(feeds)} inputs; an estimator takes one matrix: "
                         "check with --samples instead")
    (features,) = feeds.values()
    if not hasattr(estimator, "predict"):
        raise CheckError(f"{type(estimator).__name__} has no predict(): not a scikit-learn-API model")
    labels = np.asarray(estimator.predict(features))
    scores = np.asarray(estimator.predict_proba(features)) if hasattr(estimator, "predict_proba") else labels
    answers = {}
    for name, spec in model.outputs.items():
        answers[name] = labels if spec.dtype.kind in "iuOSUb" else scores
    return answers


def torch_outputs(path: Path, model: OnnxModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A TorchScript file (torch.jit.save) run on the inputs in the ONNX model's input order."""
    try:
        import torch
    except ModuleNotFoundError:
        raise CheckError(f"{path}: checking against a PyTorch model needs torch "
                         "(pip install torch, the CPU build is enough)") from None
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise CheckError(f"{path}: not a TorchScript file (save it with torch.jit.save(torch.jit.script(model)) "
                         f"or torch.jit.trace): {str(exc).splitlines()[0]}") from None
    module.eval()
    tensors = {name: torch.from_numpy(feeds[name]) for name in model.inputs}
    # By name when forward()'s parameters are the ONNX input names (so inputs named in the wrong
    # order at export are caught), else by position.
    parameters = [argument.name for argument in module.forward.schema.arguments][1:]
    with torch.no_grad():
        result = module(**tensors) if set(parameters) == set(tensors) else module(*tensors.values())
    results = list(result) if isinstance(result, tuple | list) else [result]
    if len(results) != len(model.outputs):
        raise CheckError(f"{path}: the PyTorch model returns {len(results)} outputs, the ONNX model "
                         f"{len(model.outputs)} ({', '.join(model.outputs)})")
    return {name: r.detach().cpu().numpy() for name, r in zip(model.outputs, results, strict=True)}


def check_model(onnx_path: Path, *, reference: Path | None = None, samples: Path | None = None,
                inputs: Path | None = None, rows: int = DEFAULT_ROWS, rtol: float = DEFAULT_RTOL,
                atol: float = DEFAULT_ATOL, min_agreement: float = 1.0) -> CheckResult:
    """Run the ONNX model and the reference (original model, or samples with expected outputs)."""
    if (reference is None) == (samples is None):
        raise CheckError("give the original model (--reference) or samples with expected outputs (--samples)")
    if samples is not None and inputs is not None:
        raise CheckError("--inputs goes with --reference; --samples already holds the inputs")
    if not 0.0 <= min_agreement <= 1.0:
        raise CheckError(f"--min-agreement must be between 0 and 1, not {min_agreement}")
    for path in (onnx_path, reference, samples, inputs):
        if path is not None and not path.is_file():
            raise CheckError(f"{path}: no such file")
    try:
        model = load_onnx(onnx_path)
    except ModelError as exc:
        raise CheckError(str(exc)) from None

    if samples is not None:
        arrays = read_arrays(samples)
        feeds = model_inputs(model, arrays, samples)
        expected = {name: np.asarray(arrays[name]) for name in model.outputs if name in arrays}
        if not expected:
            raise CheckError(f"{samples}: no expected values for any output of the model "
                             f"({', '.join(model.outputs)})")
        described = str(samples)
    else:
        assert reference is not None
        feeds = (model_inputs(model, read_arrays(inputs), inputs) if inputs is not None
                 else synthetic_inputs(model, rows))
        suffix = reference.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            try:
                estimator = _load_pickle(reference)
            except Exception as exc:  # unpickling raises whatever the pickled classes raise
                raise CheckError(f"{reference}: cannot unpickle the model: {type(exc).__name__}: {exc}") from None
            expected = estimator_outputs(estimator, model, feeds)
            described = f"{reference} ({type(estimator).__module__.split('.')[0]}.{type(estimator).__name__})"
        elif suffix in TORCH_SUFFIXES:
            expected = torch_outputs(reference, model, feeds)
            described = f"{reference} (torch)"
        else:
            raise CheckError(f"{reference}: the original model must be a pickle/joblib ({', '.join(PICKLE_SUFFIXES)})"
                             f" or TorchScript ({', '.join(TORCH_SUFFIXES)}) file")
    try:
        answers = model.run(feeds, model.output_names)
    except Exception as exc:  # onnxruntime's own exception types
        raise CheckError(f"{onnx_path}: onnxruntime failed on the inputs: {exc}") from None
    comparisons = [compare(name, answer, expected[name], rtol=rtol, atol=atol, min_agreement=min_agreement)
                   for name, answer in zip(model.output_names, answers, strict=True) if name in expected]
    skipped = [name for name in model.output_names if name not in expected]
    return CheckResult(onnx_path, described, rtol, atol, min_agreement, comparisons, skipped)
