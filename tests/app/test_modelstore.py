"""The model store against real Azurite and moto S3: URIs, publish, immutability, stat."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import onnx
import pytest

from app.modelstore import ModelExists, ModelNotFound, ModelStoreError, model_uri, parse_uri, publish_model, stat_model
from app.training import TrainedModel
from tests.fixtures.models import ModelStore


@pytest.mark.parametrize(
    ("uri", "store", "account_url", "container", "name", "version"),
    [
        ("https://acct01.blob.core.windows.net/models/iris-logreg/3/model.onnx",
         "azure", "https://acct01.blob.core.windows.net", "models", "iris-logreg", "3"),
        ("http://127.0.0.1:10000/devstoreaccount1/models/iris-forest/1.2.0/model.onnx",
         "azure", "http://127.0.0.1:10000/devstoreaccount1", "models", "iris-forest", "1.2.0"),
        ("s3://ml-models/iris_logreg/v7/model.onnx", "s3", "", "ml-models", "iris_logreg", "v7"),
    ],
)
def test_parse_uri(uri: str, store: str, account_url: str, container: str, name: str, version: str) -> None:
    parsed = parse_uri(uri)
    assert (parsed.store, parsed.account_url, parsed.container, parsed.name, parsed.version) == (
        store, account_url, container, name, version)
    assert parsed.key == f"{name}/{version}/model.onnx"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host/models/a/1/model.onnx", "unsupported scheme 'ftp'"),
        ("https://acct01.blob.core.windows.net/models/a/model.onnx", "<name>/<version>/model.onnx"),
        ("https://acct01.blob.core.windows.net/models/a/1/weights.bin", "<name>/<version>/model.onnx"),
        ("http://acct01.blob.core.windows.net/models/a/1/model.onnx", "needs https"),
        ("https://acct01.blob.core.windows.net/models/a/1/model.onnx?sv=2020&sig=x", "no SAS tokens"),
        ("s3:///a/1/model.onnx", "missing bucket"),
        ("s3://bucket/bad name/1/model.onnx", "invalid model name 'bad name'"),
        ("s3://bucket/a/.hidden/model.onnx", "invalid model version '.hidden'"),
        ("http://127.0.0.1:10000/devstoreaccount1", "missing container"),
    ],
)
def test_parse_uri_rejects(uri: str, message: str) -> None:
    with pytest.raises(ModelStoreError, match=message.replace("?", r"\?")) as caught:
        parse_uri(uri)
    assert str(caught.value).startswith(uri)


def test_model_uri_joins_store_name_version() -> None:
    assert model_uri("s3://bucket/", "iris", "2") == "s3://bucket/iris/2/model.onnx"
    with pytest.raises(ModelStoreError, match="invalid model version"):
        model_uri("s3://bucket", "iris", "2/3")


def test_publish_then_stat(model_store: ModelStore, trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("iris-logreg")
    published = publish_model(model.path, uri)
    assert published.sha256 == model.sha256
    assert published.size == model.path.stat().st_size
    assert stat_model(uri) == published


def test_republish_is_refused_and_keeps_the_original(
    model_store: ModelStore, trained_models: dict[str, TrainedModel]
) -> None:
    uri = model_store.unique_uri("iris")
    original = publish_model(trained_models["iris-logreg"].path, uri)
    with pytest.raises(ModelExists, match=f"already published .*sha256 {original.sha256}, not "
                                          f"{trained_models['iris-forest'].sha256}"):
        publish_model(trained_models["iris-forest"].path, uri)
    assert stat_model(uri).sha256 == original.sha256


def test_concurrent_publishes_of_one_version_have_one_winner(
    model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    uri = model_store.unique_uri("race")
    # Distinct contents, so the stored digest tells which publisher won.
    files = []
    for i in range(6):
        path = tmp_path / f"candidate-{i}.onnx"
        variant = onnx.load(str(trained_models["iris-forest"].path))
        variant.metadata_props.add(key="candidate", value=str(i))
        path.write_bytes(variant.SerializeToString())
        files.append(path)
    outcomes: list[object] = [None] * len(files)
    barrier = threading.Barrier(len(files))

    def publish(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = publish_model(files[i], uri)
        except ModelExists as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(files))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if not isinstance(o, ModelExists)]
    assert len(winners) == 1, outcomes
    assert stat_model(uri).sha256 == winners[0].sha256  # type: ignore[union-attr]


def test_stat_missing_model_is_not_found(model_store: ModelStore) -> None:
    uri = model_store.unique_uri("absent")
    with pytest.raises(ModelNotFound, match=f"^{uri}: "):
        stat_model(uri)


def test_publish_to_a_missing_container_says_so(
    model_store: ModelStore, trained_models: dict[str, TrainedModel]
) -> None:
    uri = model_store.uri("iris").replace("/models/", "/no-such-container/").replace("s3://models/",
                                                                                       "s3://no-such-bucket/")
    with pytest.raises(ModelStoreError, match="create the container or bucket first"):
        publish_model(trained_models["iris-logreg"].path, uri)


def test_publish_refuses_missing_and_empty_files(model_store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="no such model file"):
        publish_model(tmp_path / "nope.onnx", model_store.unique_uri())
    empty = tmp_path / "empty.onnx"
    empty.touch()
    with pytest.raises(ModelStoreError, match="empty"):
        publish_model(empty, model_store.unique_uri())


def test_connection_string_for_another_account_is_refused(
    azure_model_store: ModelStore, monkeypatch: pytest.MonkeyPatch, trained_models: dict[str, TrainedModel]
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_model_store.env["AZURE_STORAGE_CONNECTION_STRING"])
    with pytest.raises(ModelStoreError, match=r"AZURE_STORAGE_CONNECTION_STRING is for http://127\.0\.0\.1:"):
        publish_model(trained_models["iris-logreg"].path,
                      "https://acct01.blob.core.windows.net/models/iris/1/model.onnx")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=Path(__file__).resolve().parents[2])


def test_publish_model_cli(model_store: ModelStore, trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-forest"]
    name = parse_uri(model_store.unique_uri("cli")).name
    done = _cli("publish-model", str(model.path), "--store", model_store.url, "--model-name", name,
                "--model-version", "4", "--json", env=model_store.env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    card = result.pop("card")
    assert result == {"uri": model_store.uri(name, "4"), "name": name, "version": "4", "sha256": model.sha256,
                      "size": model.path.stat().st_size, "card_sha256": stat_model(result["uri"]).card_sha256}
    assert card["sha256"] == model.sha256 and [i["name"] for i in card["inputs"]] == ["input"]
    again = _cli("publish-model", str(model.path), "--uri", model_store.uri(name, "4"), env=model_store.env)
    assert again.returncode == 1
    assert "already published (the same bytes); versions are immutable" in again.stderr
    assert again.stdout == ""


def test_publish_model_cli_prints_the_signature(model_store: ModelStore,
                                               trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("signature")
    done = _cli("publish-model", str(model.path), "--uri", uri, env=model_store.env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{uri} sha256:{model.sha256}"
    assert [line.split()[:2] for line in lines[1:4]] == [["input", "input"], ["output", "label"],
                                                        ["output", "probabilities"]]


@pytest.mark.parametrize("content", [b"# not a model\n", b"", b"\x08\x07" + b"\xff" * 64])
def test_publish_model_cli_refuses_a_file_onnxruntime_cannot_load(
        model_store: ModelStore, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    uri = model_store.unique_uri("notonnx")
    done = _cli("publish-model", str(bad), "--uri", uri, env=model_store.env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"ai-app publish-model: refusing to publish: {bad}: not a loadable ONNX model")
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    with pytest.raises(ModelNotFound):
        stat_model(uri)  # nothing was uploaded


def test_publish_model_cli_refuses_a_model_the_server_cannot_serve(
        model_store: ModelStore, tmp_path: Path) -> None:
    # A classifier converted with skl2onnx's default ZipMap: loads in onnxruntime, but its output is
    # a sequence of maps, not a V2 tensor; the pod would fail at start.
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=500).fit(features, labels)
    zipmap = tmp_path / "model.onnx"
    zipmap.write_bytes(to_onnx(estimator, features[:1].astype("float32")).SerializeToString())
    done = _cli("publish-model", str(zipmap), "--uri", model_store.unique_uri("zipmap"), env=model_store.env)
    assert done.returncode == 1
    assert "refusing to publish" in done.stderr and "convert with options={'zipmap': False}" in done.stderr


def test_publish_model_cli_needs_a_target(trained_models: dict[str, TrainedModel]) -> None:
    done = _cli("publish-model", str(trained_models["iris-forest"].path), "--name", "x", env={})
    assert done.returncode == 1
    assert "give --uri, or all of --store, --model-name and --model-version" in done.stderr
