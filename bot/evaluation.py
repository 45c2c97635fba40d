"""Measured, not declared: run the old and the new model on the same evaluation data set.

envbot computes the figures itself with onnxruntime, on files fetched by digest, so a gate never
trusts a number a model's publisher typed in. The data set is a CSV file with a header row: the
label column named in promotion.yaml, every other column a feature, in the order of the model's
single 2-D input.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Metric name -> (task, higher is better). Classification metrics read the model's label output.
METRICS: dict[str, tuple[str, bool]] = {
    "accuracy": ("classification", True),
    "f1_macro": ("classification", True),
    "rmse": ("regression", False),
    "mae": ("regression", False),
}
BATCH_ROWS = 1024   # memory stays bounded whatever the data set's size
MAX_DATASET_BYTES = 512 * 1024 * 1024


class EvaluationError(ValueError):
    """The data set or a model cannot be evaluated; the message says which and why."""


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray   # float32 [rows, columns]
    labels: np.ndarray     # [rows]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Evaluation:
    metric: str
    old: float | None      # None when there is no old model (first release)
    new: float
    agreement: float | None   # share of rows where both models predict the same
    rows: int

    def as_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "old": self.old, "new": self.new, "agreement": self.agreement,
                "rows": self.rows}


def load_dataset(path: Path, label: str) -> Dataset:
    if path.stat().st_size > MAX_DATASET_BYTES:
        raise EvaluationError(f"{path}: the evaluation data set is larger than {MAX_DATASET_BYTES >> 20} MiB")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise EvaluationError(f"{path}: the evaluation data set is empty") from None
    if label not in header:
        raise EvaluationError(f"{path}: no label column {label!r} (columns: {', '.join(header)})")
    label_index = header.index(label)
    features, labels = [], []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise EvaluationError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        try:
            values = [float(v) for i, v in enumerate(row) if i != label_index]
            labels.append(float(row[label_index]))
        except ValueError as exc:
            raise EvaluationError(f"{path}:{line}: {exc}") from None
        features.append(values)
    if not features:
        raise EvaluationError(f"{path}: the evaluation data set has a header but no rows")
    columns = tuple(c for i, c in enumerate(header) if i != label_index)
    return Dataset(np.asarray(features, dtype=np.float32), np.asarray(labels), columns)


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:   # onnxruntime raises its own Fail/InvalidGraph types
        raise EvaluationError(f"{path}: onnxruntime cannot load the model: {exc}") from None


def predict(model: Path, dataset: Dataset, task: str) -> np.ndarray:
    session = _session(model)
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape or []) != 2:
        raise EvaluationError(f"{model}: evaluation needs a model with one 2-D input, it has "
                              f"{[(i.name, i.shape) for i in inputs]}")
    width = inputs[0].shape[1]
    if isinstance(width, int) and width != dataset.features.shape[1]:
        raise EvaluationError(f"{model}: the input takes {width} features, the data set has "
                              f"{dataset.features.shape[1]} ({', '.join(dataset.columns)})")
    outputs = session.get_outputs()
    if task == "classification":
        integer = [o for o in outputs if o.type in ("tensor(int64)", "tensor(int32)", "tensor(string)")]
        chosen = next((o for o in outputs if o.name == "label"), integer[0] if integer else None)
        if chosen is None:
            raise EvaluationError(f"{model}: no label output (an integer tensor) for a classification metric")
    else:
        chosen = next((o for o in outputs if o.type in ("tensor(float)", "tensor(double)")), None)
        if chosen is None:
            raise EvaluationError(f"{model}: no float output for a regression metric")
    parts = []
    for start in range(0, len(dataset.features), BATCH_ROWS):
        batch = dataset.features[start:start + BATCH_ROWS]
        parts.append(np.asarray(session.run([chosen.name], {inputs[0].name: batch})[0]).reshape(len(batch), -1)[:, 0])
    return np.concatenate(parts)


def score(metric: str, labels: np.ndarray, predicted: np.ndarray) -> float:
    if metric == "accuracy":
        return float(np.mean(predicted.astype(np.float64) == labels))
    if metric == "f1_macro":
        f1s = []
        for cls in np.unique(labels):
            tp = float(np.sum((predicted == cls) & (labels == cls)))
            fp = float(np.sum((predicted == cls) & (labels != cls)))
            fn = float(np.sum((predicted != cls) & (labels == cls)))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return float(np.mean(f1s))
    errors = predicted.astype(np.float64) - labels
    if metric == "rmse":
        return float(np.sqrt(np.mean(errors ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(errors)))
    raise EvaluationError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")


def evaluate(old_model: Path | None, new_model: Path, dataset_file: Path, label: str, metric: str) -> Evaluation:
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    task = METRICS[metric][0]
    dataset = load_dataset(dataset_file, label)
    new_pred = predict(new_model, dataset, task)
    new_score = score(metric, dataset.labels, new_pred)
    if old_model is None:
        return Evaluation(metric, None, new_score, None, len(dataset.labels))
    old_pred = predict(old_model, dataset, task)
    if task == "classification":
        agreement = float(np.mean(old_pred == new_pred))
    else:
        agreement = float(np.mean(np.isclose(old_pred, new_pred, rtol=1e-4, atol=1e-6)))
    return Evaluation(metric, score(metric, dataset.labels, old_pred), new_score, agreement, len(dataset.labels))
