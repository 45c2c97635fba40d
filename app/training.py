"""Train the demo models on scikit-learn's bundled iris data and export them to ONNX.

Real models for tests, the local delivery run and benchmarks: no download (load_iris ships with
scikit-learn), fixed seeds so a model's sha256 is the same on every run on a machine. The ONNX
graphs take a float tensor `input` [batch, 4] and return `label` (int64) and `probabilities`
(float [batch, 3]); skl2onnx's ZipMap is disabled so outputs are plain tensors.

Needs the `train` extra (scikit-learn, skl2onnx); the serving image does not ship it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.modelstore.digest import file_sha256
from app.modelstore.uri import MODEL_FILE, segment_error

SEED = 0
N_FEATURES = 4
# Broadly supported opsets (onnxruntime >= 1.14), so a model outlives runtime upgrades both ways.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
DEFAULT_BIG_SIZE_MB = 100


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    path: Path
    sha256: str


def _logreg(size_mb: int | None):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=SEED)


def _forest(size_mb: int | None):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=50, max_depth=8, random_state=SEED, n_jobs=1)


def _big_mlp(size_mb: int | None):
    """Two hidden layers of width w hold ~w*w float32 weights: w is chosen to reach `size_mb` MiB."""
    from sklearn.neural_network import MLPClassifier

    width = math.ceil(math.sqrt((size_mb or DEFAULT_BIG_SIZE_MB) * 1024 * 1024 / 4))
    # A few epochs: the point is a large, valid model that predicts, not a state-of-the-art one.
    return MLPClassifier(hidden_layer_sizes=(width, width), max_iter=3, random_state=SEED)


# name -> (builder, description)
MODELS: dict[str, tuple[Callable[[int | None], object], str]] = {
    "iris-logreg": (_logreg, "logistic regression, a few KiB"),
    "iris-forest": (_forest, "random forest of 50 trees, ~40 KiB"),
    "iris-big": (_big_mlp, f"MLP sized by --size-mb (default {DEFAULT_BIG_SIZE_MB} MiB), for layer-reuse tests"),
}


def train_model(name: str, out_dir: Path, version: str = "1", *, size_mb: int | None = None,
                save_joblib: bool = False, input_name: str = "input", label_noise: float = 0.0) -> TrainedModel:
    """Train `name` and write out_dir/<name>/<version>/model.onnx (the store's layout).

    `save_joblib` also writes model.joblib, for the MLServer benchmark peer only: the app never
    loads pickles. `input_name` renames the graph input and `label_noise` (0..1) replaces that share of
    the training labels with random classes: the release gates' demos of a breaking signature change
    and of a worse model.
    """
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be between 0 and 1, got {label_noise}")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    for what, value in (("name", name), ("version", version)):
        if error := segment_error(what, value):
            raise ValueError(error)
    if size_mb is not None and size_mb < 1:
        raise ValueError(f"size_mb must be >= 1, got {size_mb}")
    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.exceptions import ConvergenceWarning

    features, labels = load_iris(return_X_y=True)
    if label_noise:
        rng = np.random.default_rng(SEED)
        noisy = rng.random(len(labels)) < label_noise
        labels = labels.copy()
        labels[noisy] = rng.integers(0, 3, int(noisy.sum()))
    estimator = MODELS[name][0](size_mb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(features.astype(np.float32), labels)

    onnx_model = to_onnx(
        estimator,
        initial_types=[(input_name, FloatTensorType([None, N_FEATURES]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        name=name,
    )
    # skl2onnx stamps its own version; the digest should change only when the model does.
    onnx_model.producer_version = ""
    # The version is part of the artifact: a retrained release is a new file with its own digest,
    # even when the training data and hyperparameters are unchanged.
    onnx_model.metadata_props.add(key="model_version", value=version)
    model_dir = out_dir / name / version
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(onnx_model.SerializeToString())
    tmp.replace(path)
    if save_joblib:
        import joblib

        joblib.dump(estimator, model_dir / "model.joblib")
    return TrainedModel(name=name, version=version, path=path, sha256=file_sha256(path))


def write_eval_dataset(path: Path, rows: int = 300, *, seed: int = 1, noise: float = 0.25) -> str:
    """An evaluation data set for the iris models: iris rows resampled with Gaussian noise on every
    feature (seeded), as CSV with a header (f0..f3, label). Returns its sha256.

    The noise makes it a different sample from the training data, so a model that memorised the
    training rows gains nothing, and its size is free (the gates' benchmark uses 10,000 rows).
    """
    import numpy as np
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(labels), rows)
    noisy = features[picks] + rng.normal(0.0, noise, (rows, N_FEATURES))
    lines = ["f0,f1,f2,f3,label"]
    lines += [",".join(f"{v:.4f}" for v in row) + f",{int(label)}" for row, label in zip(noisy, labels[picks],
                                                                                          strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return file_sha256(path)
