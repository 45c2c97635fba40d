"""Model cards: made from real ONNX models at publish time, stored beside the model, verified on read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from app.modelcard import CARD_FILE, ModelCardError, build_card, load_metrics, parse_card, signature_matches
from app.modelstore import ModelStoreError, fetch_model, parse_uri, publish_model, stat_model
from app.modelstore.card import ModelCardInvalid, read_card
from app.training import TrainedModel, train_model, write_eval_dataset
from tests.fixtures.models import ModelStore


def _metrics_file(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def test_card_records_the_signature_opset_and_producer(trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    card = build_card(model.path, name="iris-logreg", version="1", sha256=model.sha256)
    assert [t.describe() for t in card.inputs] == ["input FP32[?, 4]"]
    assert {t.name: t.datatype for t in card.outputs} == {"label": "INT64", "probabilities": "FP32"}
    assert card.opset["ai.onnx"] == 17 and 1 <= card.opset["ai.onnx.ml"] <= 3
    assert card.producer.startswith("skl2onnx")
    assert card.size == model.path.stat().st_size
    # Canonical bytes: the same model always gets the same card digest.
    again = build_card(model.path, name="iris-logreg", version="1", sha256=model.sha256)
    assert again.to_bytes() == card.to_bytes()
    assert parse_card(card.to_bytes(), "card") == card


def test_symbolic_dimension_names_are_kept(tmp_path: Path) -> None:
    import onnx

    model = train_model("iris-logreg", tmp_path)
    proto = onnx.load(str(model.path))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "named.onnx"
    path.write_bytes(proto.SerializeToString())
    card = build_card(path, name="n", version="1", sha256="0" * 64)
    assert card.inputs[0].shape == ("batch", 4)


def test_card_takes_metrics_and_lineage(trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    metrics = _metrics_file(tmp_path, {"dataset": {"name": "iris-eval", "sha256": "ab" * 32},
                                       "metrics": {"accuracy": 0.97, "f1_macro": 0.96}})
    model = trained_models["iris-forest"]
    card = build_card(model.path, name="iris-forest", version="1", sha256=model.sha256, metrics_file=metrics,
                      source="https://github.com/contoso/ai-app/commit/" + "a" * 40)
    assert card.metrics == {"accuracy": 0.97, "f1_macro": 0.96}
    assert card.dataset == {"name": "iris-eval", "sha256": "ab" * 32}
    assert card.source.endswith("a" * 40)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "the metrics file is not JSON"),
    ([1, 2], "must be a JSON object"),
    ({"metrics": {"accuracy": 0.9}}, "'dataset.name' is missing"),
    ({"dataset": {"name": "eval"}, "metrics": {"accuracy": 0.9}}, "'dataset.sha256' must be"),
    ({"dataset": {"name": "eval", "sha256": "xyz"}, "metrics": {"accuracy": 0.9}}, "'dataset.sha256' must be"),
    ({"dataset": {"name": "eval", "sha256": "ab" * 32}, "metrics": {}}, "non-empty object"),
    ({"dataset": {"name": "eval", "sha256": "ab" * 32}, "metrics": {"accuracy": "high"}}, "finite number"),
    ({"dataset": {"name": "eval", "sha256": "ab" * 32}, "metrics": {"accuracy": float("nan")}}, "finite number"),
])
def test_bad_metrics_files_are_refused_with_one_line(tmp_path: Path, content: object, message: str) -> None:
    path = _metrics_file(tmp_path, content)
    with pytest.raises(ModelCardError, match=message) as caught:
        load_metrics(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_that_is_not_onnx_is_refused_before_anything_is_uploaded(
        model_store: ModelStore, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not a model\n")
    uri = model_store.unique_uri("readme")
    with pytest.raises(ModelStoreError, match="not an ONNX model"):
        publish_model(readme, uri)
    with pytest.raises(ModelStoreError):   # nothing was uploaded: neither the model nor a card
        stat_model(uri)
    with pytest.raises(ModelStoreError):
        read_card(uri, "0" * 64, "1" * 64)


def test_publish_stores_the_card_and_fetch_verifies_it(
        model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("carded")
    info = publish_model(model.path, uri, source="abc123")
    assert info.card_sha256 and stat_model(uri).card_sha256 == info.card_sha256
    card, data = read_card(uri, model.sha256)
    assert hashlib.sha256(data).hexdigest() == info.card_sha256 and card.source == "abc123"
    fetch_model(uri, model.sha256, tmp_path / "dest")
    assert parse_card((tmp_path / "dest" / CARD_FILE).read_bytes(), "fetched") == card


def test_a_tampered_card_is_detected_by_fetch_and_nothing_is_written(
        model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("tampered")
    info = publish_model(model.path, uri)
    forged = json.loads(info.card.to_bytes())
    forged["metrics"] = {"accuracy": 0.999}
    _overwrite(model_store, parse_uri(uri).beside(CARD_FILE).key, json.dumps(forged).encode())
    with pytest.raises(ModelCardInvalid, match="changed after publishing"):
        read_card(uri, model.sha256)
    with pytest.raises(ModelCardInvalid):
        fetch_model(uri, model.sha256, tmp_path / "dest")
    assert not (tmp_path / "dest" / "model.onnx").exists() and not (tmp_path / "dest" / CARD_FILE).exists()


def test_models_published_before_cards_still_fetch_and_say_no_card(
        model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    model = trained_models["iris-forest"]
    uri = model_store.unique_uri("old")
    publish_model(model.path, uri, with_card=False)
    assert read_card(uri, model.sha256) is None
    fetch_model(uri, model.sha256, tmp_path / "dest")
    assert (tmp_path / "dest" / "model.onnx").is_file() and not (tmp_path / "dest" / CARD_FILE).exists()


def test_evaluation_data_sets_fetch_by_digest(model_store: ModelStore, tmp_path: Path) -> None:
    from app.modelstore import fetch_object
    from app.modelstore.digest import file_sha256

    data = tmp_path / "eval.csv"
    sha256 = write_eval_dataset(data, rows=50)
    assert sha256 == file_sha256(data)
    uri = model_store.unique_uri("dataset").replace("/model.onnx", "/eval.csv")
    _put(model_store, parse_uri(uri, file=None).key, data.read_bytes())
    assert fetch_object(uri, sha256, tmp_path / "got.csv").read_bytes() == data.read_bytes()
    with pytest.raises(ModelStoreError, match="sha256 mismatch"):
        fetch_object(uri, "0" * 64, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_signature_matches_compares_card_and_runtime(trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    card = build_card(model.path, name="iris-logreg", version="1", sha256=model.sha256)
    loaded_in = {"input": ("FP32", (-1, 4))}
    loaded_out = {"label": ("INT64", (-1,)), "probabilities": ("FP32", (-1, 3))}
    assert signature_matches(card, loaded_in, loaded_out) == []
    assert signature_matches(card, {"x": ("FP32", (-1, 4))}, loaded_out)
    assert signature_matches(card, {"input": ("FP64", (-1, 4))}, loaded_out)


def _put(store: ModelStore, key: str, data: bytes) -> None:
    _overwrite(store, key, data)


def _overwrite(store: ModelStore, key: str, data: bytes) -> None:
    """What someone with write access to the container can do behind envbot's back."""
    if store.kind == "azure":
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(store.env["AZURE_STORAGE_CONNECTION_STRING"])
        client.get_blob_client("models", key).upload_blob(data, overwrite=True)
    else:
        import boto3

        boto3.client("s3").put_object(Bucket="models", Key=key, Body=data)


def _serving_dir(tmp_path: Path, model: TrainedModel, card_bytes: bytes) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model.path.read_bytes())
    (folder / CARD_FILE).write_bytes(card_bytes)
    return folder / "model.onnx"


def test_the_server_exposes_the_verified_card_in_version(
        trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    from app.config import Settings
    from app.server import create_app

    model = trained_models["iris-logreg"]
    metrics = _metrics_file(tmp_path, {"dataset": {"name": "iris-eval", "sha256": "cd" * 32},
                                       "metrics": {"accuracy": 0.96}})
    card = build_card(model.path, name="iris-logreg", version="1", sha256=model.sha256, metrics_file=metrics)
    path = _serving_dir(tmp_path, model, card.to_bytes())
    app = create_app(Settings(MODEL_PATH=str(path), MODEL_SHA256=model.sha256, MODEL_NAME="iris-logreg",
                              MODEL_VERSION="1"))
    body = app.test_client().get("/version").json
    assert body["model"]["card"] == {"version": "1", "sha256": model.sha256, "metrics": {"accuracy": 0.96},
                                     "dataset": {"name": "iris-eval", "sha256": "cd" * 32}, "source": None,
                                     "producer": card.producer}


@pytest.mark.parametrize("tamper", ["sha256", "signature"])
def test_the_server_refuses_a_card_that_does_not_describe_its_model(
        trained_models: dict[str, TrainedModel], tmp_path: Path, tamper: str) -> None:
    from app.config import Settings
    from app.model import ModelError
    from app.server import create_app

    model = trained_models["iris-logreg"]
    doc = json.loads(build_card(model.path, name="iris-logreg", version="1", sha256=model.sha256).to_bytes())
    if tamper == "sha256":
        doc["sha256"] = "ee" * 32
    else:
        doc["inputs"][0]["name"] = "features"
    path = _serving_dir(tmp_path, model, json.dumps(doc).encode())
    with pytest.raises(ModelError, match="card"):
        create_app(Settings(MODEL_PATH=str(path), MODEL_SHA256=model.sha256, MODEL_NAME="iris-logreg",
                            MODEL_VERSION="1"))
