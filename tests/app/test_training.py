"""The demo models: real scikit-learn models on iris, exported to ONNX that onnxruntime serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_iris

from app.modelstore.digest import file_sha256
from app.training import TrainedModel, train_model

REPO_ROOT = Path(__file__).resolve().parents[2]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["iris-logreg", "iris-forest"])
def test_model_signature_and_accuracy(trained_models: dict[str, TrainedModel], name: str) -> None:
    model = trained_models[name]
    assert model.path.name == "model.onnx" and model.path.parent.name == "1"
    assert model.sha256 == file_sha256(model.path)
    session = _session(model.path)
    [input_] = session.get_inputs()
    assert (input_.name, input_.type, input_.shape) == ("input", "tensor(float)", [None, 4])
    assert [(o.name, o.type) for o in session.get_outputs()] == [
        ("label", "tensor(int64)"), ("probabilities", "tensor(float)")]
    features, labels = load_iris(return_X_y=True)
    predicted, probabilities = session.run(None, {"input": features.astype(np.float32)})
    assert (predicted == labels).mean() > 0.95
    assert probabilities.shape == (150, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_training_is_deterministic(trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    for name, model in trained_models.items():
        assert train_model(name, tmp_path).sha256 == model.sha256


def test_big_model_reaches_the_requested_size_and_predicts(tmp_path: Path) -> None:
    model = train_model("iris-big", tmp_path, size_mb=6)
    assert model.path.stat().st_size >= 6 * 1024 * 1024
    features, _ = load_iris(return_X_y=True)
    predicted, _ = _session(model.path).run(None, {"input": features.astype(np.float32)})
    assert predicted.shape == (150,)
    assert set(predicted) <= {0, 1, 2}


def test_joblib_only_when_asked(tmp_path: Path) -> None:
    plain = train_model("iris-logreg", tmp_path / "plain")
    assert sorted(p.name for p in plain.path.parent.iterdir()) == ["model.onnx"]
    peer = train_model("iris-logreg", tmp_path / "peer", save_joblib=True)
    assert sorted(p.name for p in peer.path.parent.iterdir()) == ["model.joblib", "model.onnx"]
    import joblib

    assert joblib.load(peer.path.parent / "model.joblib").predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0


@pytest.mark.parametrize(("name", "version", "message"), [
    ("iris-svm", "1", "unknown model 'iris-svm'"),
    ("iris-logreg", "../1", "invalid model version '../1'"),
])
def test_bad_names_are_refused(tmp_path: Path, name: str, version: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        train_model(name, tmp_path, version)
    assert list(tmp_path.iterdir()) == []


def _train_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", "train", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=os.environ)


def test_train_cli(tmp_path: Path, trained_models: dict[str, TrainedModel]) -> None:
    done = _train_cli("--out", str(tmp_path), "--model-name", "iris-forest", "--model-version", "7", "--json")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    result = json.loads(line)
    assert result["path"] == str(tmp_path / "iris-forest" / "7" / "model.onnx")
    # Deterministic for a given version; the version is in the model's metadata, so its digest differs.
    assert result["sha256"] == train_model("iris-forest", tmp_path / "in-process", "7").sha256
    assert result["sha256"] != trained_models["iris-forest"].sha256
    default = _train_cli("--out", str(tmp_path / "default"))
    assert default.returncode == 0, default.stderr
    assert [line.split()[0] for line in default.stdout.splitlines()] == [
        str(tmp_path / "default" / name / "1" / "model.onnx") for name in ("iris-logreg", "iris-forest")]


def test_train_cli_bad_version(tmp_path: Path) -> None:
    done = _train_cli("--out", str(tmp_path), "--version", "a/b")  # the deprecated spelling still works
    assert done.returncode == 2
    assert "ai-app train: --version is deprecated, use --model-version" in done.stderr
    assert "ai-app train: invalid model version 'a/b'" in done.stderr
