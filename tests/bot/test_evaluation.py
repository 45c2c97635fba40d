"""envbot measures models itself: real models trained by `python -m app train`, on a data set from iris."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.training import write_eval_dataset
from bot.evaluation import EvaluationError, evaluate, load_dataset


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("eval-models")
    variants = {"good": ["--model", "iris-logreg", "--version", "2"],
                "same": ["--model", "iris-logreg", "--version", "3"],
                "forest": ["--model", "iris-forest", "--version", "1"],
                "worse": ["--model", "iris-logreg", "--version", "4", "--label-noise", "0.7"],
                "renamed": ["--model", "iris-logreg", "--version", "5", "--input-name", "features"]}
    paths = {}
    for key, argv in variants.items():
        subprocess.run([sys.executable, "-m", "app", "train", "--out", str(out), *argv], check=True,
                       capture_output=True)
        paths[key] = out / argv[1] / argv[3] / "model.onnx"
    return paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval-data") / "eval.csv"
    write_eval_dataset(path, rows=600)
    return path


def test_same_model_agrees_fully(models: dict[str, Path], dataset: Path) -> None:
    result = evaluate(models["good"], models["same"], dataset, "label", "accuracy")
    assert result.old == result.new and result.agreement == 1.0 and result.rows == 600
    assert 0.8 < result.new <= 1.0


def test_a_worse_model_measures_worse_and_agrees_less(models: dict[str, Path], dataset: Path) -> None:
    result = evaluate(models["good"], models["worse"], dataset, "label", "accuracy")
    assert result.new < result.old - 0.05
    assert result.agreement is not None and result.agreement < 0.95


def test_f1_and_first_release(models: dict[str, Path], dataset: Path) -> None:
    result = evaluate(None, models["forest"], dataset, "label", "f1_macro")
    assert result.old is None and result.agreement is None and 0.8 < result.new <= 1.0


def test_renamed_input_still_evaluates(models: dict[str, Path], dataset: Path) -> None:
    # The gate that refuses it is the signature gate; the measurement itself takes the single input.
    assert evaluate(models["good"], models["renamed"], dataset, "label", "accuracy").agreement == 1.0


def test_bad_data_sets_say_where(tmp_path: Path, models: dict[str, Path]) -> None:
    wrong_label = tmp_path / "a.csv"
    wrong_label.write_text("f0,f1,f2,f3,class\n1,2,3,4,0\n")
    with pytest.raises(EvaluationError, match="no label column 'label'"):
        load_dataset(wrong_label, "label")
    ragged = tmp_path / "b.csv"
    ragged.write_text("f0,f1,f2,f3,label\n1,2,3,4,0\n1,2,3\n")
    with pytest.raises(EvaluationError, match=r"b\.csv:3: 3 fields"):
        load_dataset(ragged, "label")
    text = tmp_path / "c.csv"
    text.write_text("f0,f1,f2,f3,label\n1,2,x,4,0\n")
    with pytest.raises(EvaluationError, match=r"c\.csv:2"):
        load_dataset(text, "label")
    narrow = tmp_path / "d.csv"
    narrow.write_text("f0,f1,label\n1,2,0\n")
    with pytest.raises(EvaluationError, match="takes 4 features"):
        evaluate(None, models["good"], narrow, "label", "accuracy")
    with pytest.raises(EvaluationError, match="unknown metric"):
        evaluate(None, models["good"], narrow, "label", "auc")
