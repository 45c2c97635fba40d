"""`ai-app check-model` on real conversions (docs/examples: scikit-learn, LightGBM, PyTorch), trained
here on data sets that ship with scikit-learn, and on deliberately broken conversions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
from onnx import helper

from app.modelcheck import CheckError, check_model, compare

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "docs" / "examples"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", "check-model", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False, timeout=300)


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sklearn")
    example("convert_sklearn").main(out)
    return out


@pytest.fixture(scope="module")
def lightgbm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lightgbm")
    example("convert_lightgbm").main(out)
    return out


def reorder_input_columns(source: Path, dest: Path, order: list[int]) -> None:
    """The conversion bug of a feature order that differs from training: the graph reads its input
    columns permuted (a Gather on axis 1 in front of the converted model)."""
    model = onnx.load(source)
    graph = model.graph
    original = graph.input[0].name
    permuted = f"{original}_permuted"
    for node in graph.node:
        node.input[:] = [permuted if name == original else name for name in node.input]
    graph.initializer.append(helper.make_tensor("column_order", onnx.TensorProto.INT64, [len(order)], order))
    graph.node.insert(0, helper.make_node("Gather", [original, "column_order"], [permuted], axis=1))
    onnx.checker.check_model(model)
    onnx.save(model, dest)


@pytest.mark.parametrize("fixture", ["sklearn_model", "lightgbm_model"])
def test_a_faithful_conversion_passes_against_the_original_and_the_samples(
        fixture: str, request: pytest.FixtureRequest) -> None:
    out: Path = request.getfixturevalue(fixture)
    done = cli(str(out / "model.onnx"), "--reference", str(out / "model.joblib"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["passed"] is True
    by_name = {o["name"]: o for o in result["outputs"]}
    assert set(by_name) == {"label", "probabilities"}
    assert by_name["label"] == {"name": "label", "kind": "exact", "rows": 256, "agreement": 1.0,
                                "max_abs_diff": None, "max_rel_diff": None, "passed": True}
    assert by_name["probabilities"]["kind"] == "float"
    assert by_name["probabilities"]["max_abs_diff"] < 1e-5

    samples = cli(str(out / "model.onnx"), "--samples", str(out / "samples.npz"))
    assert samples.returncode == 0, samples.stderr
    assert "label                ok" in samples.stdout and "probabilities        ok" in samples.stdout


def test_check_model_catches_a_conversion_with_the_wrong_input_order(sklearn_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    reorder_input_columns(sklearn_model / "model.onnx", broken, [1, 0, 3, 2])
    done = cli(str(broken), "--reference", str(sklearn_model / "model.joblib"))
    assert done.returncode == 1
    assert "MISMATCH" in done.stdout
    assert done.stderr.strip() == (
        f"ai-app check-model: {broken} does not answer like {sklearn_model / 'model.joblib'} (sklearn.Pipeline): "
        "label, probabilities beyond the tolerance; do not publish it")
    # The same with the held-out samples and real iris rows: the report says how far off it is.
    result = check_model(broken, samples=sklearn_model / "samples.npz")
    probabilities = next(o for o in result.outputs if o.name == "probabilities")
    assert not result.passed and probabilities.max_abs_diff > 0.1 and probabilities.agreement < 0.5


def test_check_model_catches_the_wrong_input_order_in_lightgbm(lightgbm_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    order = list(range(30))
    order[0], order[20] = order[20], order[0]  # two features swapped out of thirty
    reorder_input_columns(lightgbm_model / "model.onnx", broken, order)
    result = check_model(broken, samples=lightgbm_model / "samples.npz")
    assert not result.passed
    assert any(o.name == "probabilities" and o.max_abs_diff > 1e-3 for o in result.outputs)


def test_min_agreement_lets_a_share_of_rows_differ(sklearn_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    reorder_input_columns(sklearn_model / "model.onnx", broken, [1, 0, 3, 2])
    strict = check_model(broken, samples=sklearn_model / "samples.npz")
    label = next(o for o in strict.outputs if o.name == "label")
    lenient = check_model(broken, samples=sklearn_model / "samples.npz", min_agreement=label.agreement)
    assert next(o for o in lenient.outputs if o.name == "label").passed


def test_json_samples_and_a_skipped_output(sklearn_model: Path, tmp_path: Path) -> None:
    with np.load(sklearn_model / "samples.npz") as data:
        document = {"inputs": {"input": data["input"][:5].tolist()},
                    "outputs": {"probabilities": data["probabilities"][:5].tolist()}}
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps(document))
    done = cli(str(sklearn_model / "model.onnx"), "--samples", str(samples))
    assert done.returncode == 0, done.stderr
    assert "5/5 rows agree" in done.stdout
    assert "label                skipped  (the reference gives no expected values)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "{dir}/samples.json"], "no values for the model's input(s) ['input']"),
        (["--samples", "{dir}/model.joblib"], "samples must be .npz or .json"),
        (["--reference", "{dir}/missing.joblib"], "missing.joblib: no such file"),
        (["--reference", "{dir}/samples.npz"], "must be a pickle/joblib"),
        (["--reference", "{dir}/not-a-pickle.pkl"], "cannot unpickle the model"),
        (["--reference", "{dir}/model.joblib", "--inputs", "{dir}/wide.json"], "does not fit the model's [-1, 4]"),
        (["--samples", "{dir}/samples.npz", "--inputs", "{dir}/wide.json"], "--inputs goes with --reference"),
        (["--samples", "{dir}/samples.npz", "--min-agreement", "2"], "--min-agreement must be between 0 and 1"),
    ],
)
def test_bad_input_is_one_clear_line(sklearn_model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "samples.json").write_text(json.dumps({"inputs": {"features": [[1, 2, 3, 4]]}}))
    (tmp_path / "wide.json").write_text(json.dumps({"inputs": {"input": [[1, 2, 3, 4, 5]]}}))
    (tmp_path / "not-a-pickle.pkl").write_text("hello")
    (tmp_path / "model.joblib").write_bytes((sklearn_model / "model.joblib").read_bytes())
    (tmp_path / "samples.npz").write_bytes((sklearn_model / "samples.npz").read_bytes())
    done = cli(str(sklearn_model / "model.onnx"), *(a.format(dir=tmp_path) for a in args))
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_not_an_onnx_file(tmp_path: Path, sklearn_model: Path) -> None:
    readme = REPO_ROOT / "README.md"
    with pytest.raises(CheckError, match="not a loadable ONNX model"):
        check_model(readme, samples=sklearn_model / "samples.npz")


def test_compare_reshapes_a_regressors_column_and_refuses_other_shapes() -> None:
    same = compare("y", np.ones((4, 1), np.float32), np.ones(4), rtol=0, atol=0, min_agreement=1)
    assert same.passed and same.max_abs_diff == 0.0
    with pytest.raises(CheckError, match=r"shape \[4, 2\], the reference \[4\]"):
        compare("y", np.ones((4, 2)), np.ones(4), rtol=0, atol=0, min_agreement=1)


# --- PyTorch --------------------------------------------------------------------------------------
# torch is installed by scripts/bootstrap as the CPU build where one is reachable (see there).


@pytest.fixture(scope="module")
def pytorch_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="torch (CPU build) not installed: scripts/bootstrap installs it "
                                        "where a CPU wheel is reachable")
    out = tmp_path_factory.mktemp("pytorch")
    example("convert_pytorch").main(out)
    return out


def test_pytorch_conversion_passes(pytorch_model: Path) -> None:
    for reference in (["--reference", str(pytorch_model / "model.pt")],
                      ["--samples", str(pytorch_model / "samples.npz")]):
        done = cli(str(pytorch_model / "model.onnx"), *reference, "--json")
        assert done.returncode == 0, done.stderr
        (output,) = json.loads(done.stdout)["outputs"]
        assert output["name"] == "probabilities" and output["agreement"] == 1.0


def test_pytorch_export_with_its_input_names_swapped_is_caught(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch (CPU build) not installed")

    class Scorer(torch.nn.Module):
        """Two inputs of the same shape: easy to name in the wrong order at export."""

        def __init__(self) -> None:
            super().__init__()
            self.user_weights = torch.nn.Linear(3, 2)
            self.item_weights = torch.nn.Linear(3, 2)

        def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
            return self.user_weights(user) + 2 * self.item_weights(item)

    torch.manual_seed(0)
    model = Scorer().eval()
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    user, item = torch.randn(64, 3), torch.randn(64, 3)
    with torch.no_grad():
        np.savez(tmp_path / "samples.npz", user=user.numpy(), item=item.numpy(), score=model(user, item).numpy())
    batch = torch.export.Dim("batch")
    for names, path in ((["user", "item"], "right.onnx"), (["item", "user"], "wrong.onnx")):
        torch.onnx.export(model, (user[:2], item[:2]), tmp_path / path, dynamo=True, input_names=names,
                          output_names=["score"], dynamic_shapes={"user": {0: batch}, "item": {0: batch}})

    for reference in ("--reference", "model.pt"), ("--samples", "samples.npz"):
        right = cli(str(tmp_path / "right.onnx"), reference[0], str(tmp_path / reference[1]))
        assert right.returncode == 0, right.stderr
        wrong = cli(str(tmp_path / "wrong.onnx"), reference[0], str(tmp_path / reference[1]))
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert "score                MISMATCH" in wrong.stdout
