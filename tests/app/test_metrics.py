"""Prometheus metrics of one app (single process); the multi-worker aggregation is in test_serve.py."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.server import create_app
from app.training import TrainedModel


@pytest.fixture
def client(trained_models: dict[str, TrainedModel]) -> FlaskClient:
    model = trained_models["iris-logreg"]
    config = {"MODEL_PATH": str(model.path), "MODEL_NAME": "iris", "MODEL_VERSION": "2"}
    return create_app(Settings(**config)).test_client()


def samples(client: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def rest(**values: str) -> frozenset[tuple[str, str]]:
    """Labels of a REST request's series (gRPC requests are counted under protocol="grpc")."""
    return labels(protocol="rest", **values)


def test_requests_latency_and_inference_time_are_labelled_by_model(client: FlaskClient) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
    for _ in range(3):
        assert client.post("/v2/models/iris/infer", json=body).status_code == 200
    assert client.post("/v2/models/iris/infer", json={"inputs": []}).status_code == 400
    assert client.get("/v2/models/nope/ready").status_code == 404
    assert client.get("/no/such/page").status_code == 404

    found = samples(client)
    model = {"model": "iris", "version": "2"}
    infer_route = "/v2/models/<name>/infer"
    assert found[("ai_app_http_requests_total", rest(method="POST", route=infer_route, status="200", **model))] == 3
    assert found[("ai_app_http_requests_total", rest(method="POST", route=infer_route, status="400", **model))] == 1
    # Routes are templates: an unknown model name or path adds no new series.
    ready_route = "/v2/models/<name>/ready"
    assert found[("ai_app_http_requests_total", rest(method="GET", route=ready_route, status="404", **model))] == 1
    assert found[("ai_app_http_requests_total", rest(method="GET", route="unmatched", status="404", **model))] == 1
    duration = rest(method="POST", route=infer_route, **model)
    assert found[("ai_app_http_request_duration_seconds_count", duration)] == 4
    assert found[("ai_app_http_request_duration_seconds_sum", duration)] > 0
    assert found[("ai_app_model_inference_duration_seconds_count", labels(**model))] == 3
    assert found[("ai_app_model_inferences_in_progress", labels(**model))] == 0


def test_apps_have_independent_metrics(trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    first = create_app(Settings(MODEL_PATH=str(model.path), MODEL_NAME="iris")).test_client()
    second = create_app(Settings(MODEL_PATH=str(model.path), MODEL_NAME="iris")).test_client()
    first.get("/v2/health/live")
    key = (
        "ai_app_http_requests_total",
        rest(method="GET", route="/v2/health/live", status="200", model="iris", version="1"),
    )
    assert samples(first)[key] == 1
    assert key not in samples(second)
