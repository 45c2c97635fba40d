"""Loading ONNX models: sha256 verification, V2 metadata from the graph, unservable files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from app.model import ModelDigestMismatch, ModelError, OnnxModel
from app.training import TrainedModel

IRIS_ROW = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)


def test_load_verifies_the_digest_and_reads_metadata(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["iris-forest"]
    model = OnnxModel.load(trained.path, name="iris", version="4", expected_sha256=trained.sha256.upper())
    assert model.sha256 == trained.sha256
    assert model.metadata() == {
        "name": "iris",
        "versions": ["4"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }
    label, probabilities = model.run({"input": IRIS_ROW}, ["label", "probabilities"])
    assert label.tolist() == [0]
    assert probabilities.shape == (1, 3)


def test_digest_is_computed_when_not_pinned(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["iris-logreg"]
    model = OnnxModel.load(trained.path, name="m", version="1")
    assert model.sha256 == hashlib.sha256(trained.path.read_bytes()).hexdigest()


def test_digest_mismatch_names_both_digests(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["iris-logreg"]
    wrong = "0" * 64
    with pytest.raises(ModelDigestMismatch) as caught:
        OnnxModel.load(trained.path, name="m", version="1", expected_sha256=wrong)
    message = str(caught.value)
    assert f"expected {wrong}" in message
    assert f"actual {trained.sha256}" in message
    assert str(trained.path) in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model file"):
        OnnxModel.load(tmp_path / "absent.onnx", name="m", version="1")


def test_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x80\x04 definitely a pickle, never loaded")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OnnxModel.load(path, name="m", version="1")


def test_zipmap_classifier_is_refused_with_a_hint(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    estimator = LogisticRegression(max_iter=500).fit(features, labels)
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(to_onnx(estimator, features[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString())
    with pytest.raises(ModelError, match="zipmap"):
        OnnxModel.load(path, name="m", version="1")


def test_sessions_with_thread_pools_are_rebuilt_after_fork(trained_models: dict[str, TrainedModel]) -> None:
    trained = trained_models["iris-forest"]
    single = OnnxModel.load(trained.path, name="m", version="1")
    assert not single.needs_reopen_after_fork
    pooled = OnnxModel.load(trained.path, name="m", version="1", intra_op_threads=2)
    assert pooled.needs_reopen_after_fork
    before = pooled.session
    pooled.reopen_after_fork()
    assert pooled.session is not before
    np.testing.assert_array_equal(
        pooled.run({"input": IRIS_ROW}, ["probabilities"])[0], single.run({"input": IRIS_ROW}, ["probabilities"])[0]
    )
