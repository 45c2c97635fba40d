"""The Open Inference Protocol V2 endpoints, in-process through Flask's test client, on the real models."""

from __future__ import annotations

import gzip
import io
import json
import logging
import struct
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.logs import JsonFormatter
from app.server import create_app, load_model
from app.training import TrainedModel

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def make_app(model: TrainedModel, **overrides: object) -> Flask:
    config = {
        "MODEL_PATH": str(model.path),
        "MODEL_SHA256": model.sha256,
        "MODEL_NAME": model.name,
        "MODEL_VERSION": model.version,
        "SOURCE_REVISION": "0123abc",
        "APP_VERSION": "9.9.9",
    }
    config.update(overrides)
    return create_app(Settings(**config))


@pytest.fixture(scope="module", params=["iris-logreg", "iris-forest"])
def model(request: pytest.FixtureRequest, trained_models: dict[str, TrainedModel]) -> TrainedModel:
    return trained_models[request.param]


@pytest.fixture(scope="module")
def client(model: TrainedModel) -> FlaskClient:
    return make_app(model).test_client()


@pytest.fixture(scope="module")
def logreg_client(trained_models: dict[str, TrainedModel]) -> FlaskClient:
    return make_app(trained_models["iris-logreg"], MAX_REQUEST_BYTES=4096).test_client()


def reference(model_path: Path, rows: list[list[float]]) -> dict[str, np.ndarray]:
    """What onnxruntime itself returns for these rows: the truth the server must reproduce."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": np.array(rows, dtype=np.float32)}), strict=True))


def infer_body(rows: list[list[float]], **extra: object) -> dict[str, object]:
    flat = [v for row in rows for v in row]
    return {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32", "data": flat}], **extra}


def test_health_endpoints(client: FlaskClient) -> None:
    live = client.get("/v2/health/live")
    assert (live.status_code, live.json) == (200, {"live": True})
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json) == (200, {"ready": True})


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_server_metadata(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json == {"name": "ai-app", "version": "9.9.9", "extensions": ["binary_tensor_data"]}


@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_metadata_comes_from_the_onnx_graph(client: FlaskClient, model: TrainedModel, suffix: str) -> None:
    response = client.get(f"/v2/models/{model.name}{suffix}")
    assert response.status_code == 200
    assert response.json == {
        "name": model.name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
    }


@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_ready(client: FlaskClient, model: TrainedModel, suffix: str) -> None:
    response = client.get(f"/v2/models/{model.name}{suffix}/ready")
    assert (response.status_code, response.json) == (200, {"name": model.name, "ready": True})


def test_version_endpoint(client: FlaskClient, model: TrainedModel) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    assert response.json == {
        "app_version": "9.9.9",
        "source_revision": "0123abc",
        "model": {"name": model.name, "version": "1", "sha256": model.sha256, "loaded": True,
                  "card": None},
    }


@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_infer_matches_onnxruntime(client: FlaskClient, model: TrainedModel, suffix: str) -> None:
    response = client.post(f"/v2/models/{model.name}{suffix}/infer", json=infer_body(ROWS))
    assert response.status_code == 200, response.json
    expected = reference(model.path, ROWS)
    body = response.json
    assert (body["model_name"], body["model_version"]) == (model.name, "1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["shape"] == [3]
    assert outputs["label"]["data"] == expected["label"].tolist()
    assert outputs["probabilities"]["datatype"] == "FP32"
    assert outputs["probabilities"]["shape"] == [3, 3]
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(3, 3), expected["probabilities"], rtol=1e-6
    )
    # The label is the class with the highest probability: column i of probabilities is class i.
    assert outputs["label"]["data"] == np.argmax(expected["probabilities"], axis=1).tolist()


def test_nested_and_flat_data_give_the_same_answer(client: FlaskClient, model: TrainedModel) -> None:
    flat = client.post(f"/v2/models/{model.name}/infer", json=infer_body(ROWS)).json
    nested_body = {"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS}]}
    nested = client.post(f"/v2/models/{model.name}/infer", json=nested_body).json
    assert flat["outputs"] == nested["outputs"]


def test_integer_json_numbers_are_accepted_for_floats(client: FlaskClient, model: TrainedModel) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5, 3, 1, 0]}]}
    response = client.post(f"/v2/models/{model.name}/infer", json=body)
    assert response.status_code == 200
    assert response.json["outputs"][0]["data"] == reference(model.path, [[5, 3, 1, 0]])["label"].tolist()


def test_requested_outputs_id_and_parameters(client: FlaskClient, model: TrainedModel) -> None:
    body = infer_body(ROWS[:1], id="req-42", parameters={"priority": 1}, outputs=[{"name": "probabilities"}])
    response = client.post(f"/v2/models/{model.name}/infer", json=body)
    assert response.status_code == 200
    assert response.json["id"] == "req-42"
    assert [o["name"] for o in response.json["outputs"]] == ["probabilities"]


def test_no_id_in_request_means_no_id_in_response(client: FlaskClient, model: TrainedModel) -> None:
    response = client.post(f"/v2/models/{model.name}/infer", json=infer_body(ROWS[:1]))
    assert "id" not in response.json


def test_binary_tensor_data_extension(client: FlaskClient, model: TrainedModel) -> None:
    features = np.array(ROWS, dtype=np.float32)
    header = {
        "inputs": [
            {"name": "input", "shape": [3, 4], "datatype": "FP32", "parameters": {"binary_data_size": features.nbytes}}
        ],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}],
    }
    header_bytes = json.dumps(header).encode()
    response = client.post(
        f"/v2/models/{model.name}/infer",
        data=header_bytes + features.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header_bytes)), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.data[:300]
    json_length = int(response.headers["Inference-Header-Content-Length"])
    body = json.loads(response.data[:json_length])
    label, probabilities = body["outputs"]
    assert label["parameters"] == {"binary_data_size": 3 * 8}
    assert "data" not in label
    labels = np.frombuffer(response.data[json_length:], dtype="<i8")
    expected = reference(model.path, ROWS)
    assert labels.tolist() == expected["label"].tolist()
    np.testing.assert_allclose(np.array(probabilities["data"]).reshape(3, 3), expected["probabilities"], rtol=1e-6)


def test_binary_data_output_request_parameter(client: FlaskClient, model: TrainedModel) -> None:
    body = infer_body(ROWS, parameters={"binary_data_output": True})
    response = client.post(f"/v2/models/{model.name}/infer", json=body)
    json_length = int(response.headers["Inference-Header-Content-Length"])
    sizes = [o["parameters"]["binary_data_size"] for o in json.loads(response.data[:json_length])["outputs"]]
    assert sizes == [3 * 8, 3 * 3 * 4]
    assert len(response.data) == json_length + sum(sizes)


def test_gzip_request_body(client: FlaskClient, model: TrainedModel) -> None:
    response = client.post(
        f"/v2/models/{model.name}/infer",
        data=gzip.compress(json.dumps(infer_body(ROWS)).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json["outputs"][0]["data"] == reference(model.path, ROWS)["label"].tolist()


def test_request_id_is_echoed_or_generated(client: FlaskClient) -> None:
    echoed = client.get("/v2/health/live", headers={"X-Request-ID": "trace-abc-123"})
    assert echoed.headers["X-Request-ID"] == "trace-abc-123"
    generated = client.get("/v2/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert generated.headers["X-Request-ID"] not in ("", "bad id\twith spaces")
    assert len(generated.headers["X-Request-ID"]) == 32


def test_access_log_is_one_json_object_with_the_request_id(
    client: FlaskClient, model: TrainedModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.post(f"/v2/models/{model.name}/infer", json=infer_body(ROWS), headers={"X-Request-ID": "log-me"})
    records = [r for r in caplog.records if r.name == "app.access"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "log-me"
    assert entry["status"] == 200
    assert entry["route"] == "/v2/models/<name>/infer"
    assert entry["path"] == f"/v2/models/{model.name}/infer"
    assert entry["level"] == "INFO"


def test_readiness_before_the_model_is_loaded(trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    app = create_app(Settings(MODEL_PATH=None, MODEL_NAME=model.name, MODEL_VERSION="1"))
    client = app.test_client()
    assert client.get("/v2/health/live").status_code == 200
    for path in ("/v2/health/ready", f"/v2/models/{model.name}/ready", f"/v2/models/{model.name}"):
        response = client.get(path)
        assert response.status_code == 503
        assert "not loaded" in response.json["error"]
    infer = client.post(f"/v2/models/{model.name}/infer", json=infer_body(ROWS))
    assert infer.status_code == 503
    assert client.get("/version").json["model"]["loaded"] is False

    app.config["MODEL_PATH"] = str(model.path)
    load_model(app)
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get(f"/v2/models/{model.name}/ready").status_code == 200


def _binary_request(header: dict[str, object], binary: bytes) -> dict[str, object]:
    header_bytes = json.dumps(header).encode()
    return {
        "data": header_bytes + binary,
        "headers": {"Inference-Header-Content-Length": str(len(header_bytes))},
    }


def _one_input(**fields: object) -> dict[str, object]:
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}
    tensor.update(fields)
    return {"inputs": [{k: v for k, v in tensor.items() if v is not None}]}


# (case id, request kwargs for client.post, path suffix or None, expected status, fragment of the error)
BAD_REQUESTS = [
    ("malformed-json", {"data": b'{"inputs": [', "content_type": "application/json"}, None, 400, "not valid JSON"),
    ("not-utf8", {"data": b"\xff\xfe{}", "content_type": "application/json"}, None, 400, "not valid JSON"),
    ("body-is-a-list", {"json": [1, 2]}, None, 400, "JSON object"),
    ("no-inputs", {"json": {"outputs": []}}, None, 400, "'inputs'"),
    ("empty-inputs", {"json": {"inputs": []}}, None, 400, "'inputs'"),
    ("input-not-object", {"json": {"inputs": [3]}}, None, 400, "inputs[0]"),
    ("unknown-input", {"json": _one_input(name="features")}, None, 400, "'features' is not an input"),
    ("duplicate-input", {"json": {"inputs": _one_input()["inputs"] * 2}}, None, 400, "given twice"),
    ("wrong-datatype", {"json": _one_input(datatype="FP64")}, None, 400, "FP64 does not match"),
    ("unknown-datatype", {"json": _one_input(datatype="FLOAT")}, None, 400, "unknown datatype"),
    ("wrong-rank", {"json": _one_input(shape=[4])}, None, 400, "does not fit"),
    ("wrong-dimension", {"json": _one_input(shape=[1, 3], data=[1, 2, 3])}, None, 400, "does not fit"),
    ("negative-dimension", {"json": _one_input(shape=[-1, 4])}, None, 400, "non-negative integers"),
    ("shape-not-list", {"json": _one_input(shape="1,4")}, None, 400, "non-negative integers"),
    ("size-mismatch", {"json": _one_input(shape=[2, 4])}, None, 400, "has 4 elements but shape needs 8"),
    ("ragged-nesting", {"json": _one_input(data=[[1, 2], [3]])}, None, 400, "regular nested list"),
    ("strings-for-fp32", {"json": _one_input(data=["1", "2", "3", "4"])}, None, 400, "must hold numbers"),
    ("nulls-for-fp32", {"json": _one_input(data=[None, 1, 2, 3])}, None, 400, "must hold numbers"),
    ("no-data", {"json": _one_input(data=None)}, None, 400, "has no data"),
    ("unknown-output", {"json": {**_one_input(), "outputs": [{"name": "score"}]}}, None, 400, "'score'"),
    ("outputs-not-list", {"json": {**_one_input(), "outputs": "label"}}, None, 400, "outputs must be a list"),
    ("empty-outputs", {"json": {**_one_input(), "outputs": []}}, None, 400, "outputs is empty"),
    (
        "classification-extension",
        {"json": {**_one_input(), "outputs": [{"name": "label", "parameters": {"classification": 2}}]}},
        None,
        400,
        "classification",
    ),
    ("parameters-not-object", {"json": {**_one_input(), "parameters": [1]}}, None, 400, "parameters"),
    ("unknown-model", {"json": _one_input()}, "/v2/models/resnet/infer", 404, "'resnet' not found"),
    ("unknown-version", {"json": _one_input()}, "/v2/models/{name}/versions/7/infer", 404, "version '7'"),
    ("too-large", {"json": _one_input(data=[1.0] * 2000, shape=[500, 4])}, None, 413, "MAX_REQUEST_BYTES"),
    ("text-plain", {"data": json.dumps(_one_input()), "content_type": "text/plain"}, None, 415, "Content-Type"),
    ("form", {"data": {"a": "b"}}, None, 415, "Content-Type"),
    (
        "bad-header-length",
        {"data": b"{}", "headers": {"Inference-Header-Content-Length": "abc"}},
        None,
        400,
        "not an integer",
    ),
    (
        "header-length-past-body",
        {"data": b"{}", "headers": {"Inference-Header-Content-Length": "99"}},
        None,
        400,
        "body has 2 bytes",
    ),
    (
        "binary-size-mismatch",
        _binary_request(
            {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]},
            b"\0" * 8,
        ),
        None,
        400,
        "needs 16 bytes",
    ),
    (
        "binary-size-past-body",
        _binary_request(
            {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
                ]
            },
            b"\0" * 8,
        ),
        None,
        400,
        "does not fit the body",
    ),
    (
        "binary-leftover",
        _binary_request(
            {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
                ]
            },
            b"\0" * 20,
        ),
        None,
        400,
        "not used by any input",
    ),
    (
        "binary-without-header",
        {"json": _one_input(data=None, parameters={"binary_data_size": 16})},
        None,
        400,
        "no Inference-Header-Content-Length",
    ),
    (
        "bad-gzip",
        {"data": b"not gzip", "headers": {"Content-Encoding": "gzip"}, "content_type": "application/json"},
        None,
        400,
        "not valid gzip",
    ),
    (
        "gzip-bomb",
        {
            "data": gzip.compress(b" " * 100_000),
            "headers": {"Content-Encoding": "gzip"},
            "content_type": "application/json",
        },
        None,
        413,
        "decompressed request body exceeds",
    ),
    ("datatype-object", {"json": _one_input(datatype={})}, None, 400, "unknown datatype {}"),
    ("datatype-list", {"json": _one_input(datatype=[])}, None, 400, "unknown datatype []"),
    ("output-name-object", {"json": {**_one_input(), "outputs": [{"name": {}}]}}, None, 400, "outputs[0].name {}"),
    ("fp32-overflow", {"json": _one_input(data=[1e39, 1, 2, 3])}, None, 400, "outside the range of FP32"),
    ("id-number", {"json": {**_one_input(), "id": 42}}, None, 400, "id must be a string"),
    ("id-object", {"json": {**_one_input(), "id": {"a": 1}}}, None, 400, "id must be a string"),
    (
        "gzip-without-trailer",
        {
            "data": gzip.compress(json.dumps(_one_input()).encode())[:-8],
            "headers": {"Content-Encoding": "gzip"},
            "content_type": "application/json",
        },
        None,
        400,
        "truncated gzip",
    ),
    (
        "gzip-with-junk-after",
        {
            "data": gzip.compress(json.dumps(_one_input()).encode()) + b"junk",
            "headers": {"Content-Encoding": "gzip"},
            "content_type": "application/json",
        },
        None,
        400,
        "4 bytes after the end of its gzip data",
    ),
    (
        "chunked-too-large",
        {"input_stream": io.BytesIO(b" " * 5000), "content_type": "application/json"},
        None,
        413,
        "MAX_REQUEST_BYTES",
    ),
    (
        "unknown-encoding",
        {"data": b"{}", "headers": {"Content-Encoding": "br"}, "content_type": "application/json"},
        None,
        415,
        "Content-Encoding",
    ),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "path", "status", "fragment"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_gets_a_4xx_json_error(
    logreg_client: FlaskClient,
    trained_models: dict[str, TrainedModel],
    case: str,
    kwargs: dict[str, object],
    path: str | None,
    status: int,
    fragment: str,
) -> None:
    name = trained_models["iris-logreg"].name
    url = (path or "/v2/models/{name}/infer").format(name=name)
    response = logreg_client.post(url, **kwargs)
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    assert fragment in response.json["error"]
    # The worker is unharmed: the next good request succeeds.
    assert logreg_client.post(f"/v2/models/{name}/infer", json=infer_body(ROWS[:1])).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/route", 404),
        ("GET", "/v2/models/iris-logreg/infer", 405),
        ("DELETE", "/v2/health/live", 405),
        ("POST", "/version", 405),
    ],
)
def test_unknown_routes_and_methods_get_json_errors(
    logreg_client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = logreg_client.open(path, method=method)
    assert response.status_code == status
    assert isinstance(response.json["error"], str)


def test_infer_with_another_method_names_the_allowed_one(logreg_client: FlaskClient) -> None:
    for path in ("/v2/models/iris-logreg/infer", "/v2/models/iris-logreg/versions/1/infer"):
        response = logreg_client.put(path, json={})
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert response.json["error"]


def test_binary_bytes_input_length_prefix_is_validated(logreg_client: FlaskClient) -> None:
    # A BYTES tensor sent to an FP32 input is a datatype error before any binary parsing.
    header = {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 3}}]}
    response = logreg_client.post("/v2/models/iris-logreg/infer", **_binary_request(header, struct.pack("<I", 9)[:3]))
    assert response.status_code == 400
    assert "BYTES does not match" in response.json["error"]


def test_access_log_off_still_logs_failures(
    trained_models: dict[str, TrainedModel], caplog: pytest.LogCaptureFixture
) -> None:
    model = trained_models["iris-logreg"]
    client = make_app(model, ACCESS_LOG=False).test_client()
    with caplog.at_level(logging.INFO, logger="app.access"):
        assert client.post(f"/v2/models/{model.name}/infer", json=infer_body(ROWS)).status_code == 200
        assert client.post(f"/v2/models/{model.name}/infer", json={"inputs": []}).status_code == 400
    statuses = [JsonFormatter().format(r) for r in caplog.records if r.name == "app.access"]
    assert [json.loads(line)["status"] for line in statuses] == [400]
