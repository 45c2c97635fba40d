"""Prometheus metrics of one app (single process); the multi-worker aggregation is in test_serve.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.metrics import Metrics
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


def test_batched_observations_expose_what_direct_ones_do() -> None:
    # Metrics.flush writes a batch through Histogram's own values (_sum, _buckets): the exposition
    # must be the one prometheus_client gives for the same observations made one by one, bucket
    # edges included (an observation equal to a bound belongs to that bound's bucket).
    observations = [0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.04, 0.5, 10.0, 11.0, 0.0005]
    batched = Metrics("iris", "1")
    for seconds in observations:
        batched.observe_request("POST", "/r", 200, seconds)
        batched.inference_started()
        batched.inference_finished(seconds, failed=seconds > 10)
    unflushed = batched.requests.labels("rest", "POST", "/r", "200", "iris", "1")._value.get()
    assert unflushed == 0  # nothing is written before a flush
    batched.flush()

    direct = Metrics("iris", "1")
    for seconds in observations:
        direct.requests.labels("rest", "POST", "/r", "200", "iris", "1").inc()
        direct.request_duration.labels("rest", "POST", "/r", "iris", "1").observe(seconds)
        direct.inference_duration.observe(seconds)
        if seconds > 10:
            direct.inference_failures.inc()

    def exposition(metrics: Metrics) -> list[tuple[str, frozenset[tuple[str, str]], float]]:
        return sorted(
            (s.name, frozenset(s.labels.items()), s.value)
            for family in text_string_to_metric_families(metrics.render().decode())
            for s in family.samples
            if not s.name.endswith("_created")
        )

    assert exposition(batched) == exposition(direct)
    assert ("ai_app_model_inferences_in_progress", labels(model="iris", version="1"), 0.0) in exposition(batched)


def _in_progress(metrics: Metrics) -> float:
    family, = (f for f in text_string_to_metric_families(metrics.render().decode())
               if f.name == "ai_app_model_inferences_in_progress")
    sample, = family.samples
    assert sample.labels == {"model": "iris", "version": "1"}
    return sample.value


def test_in_progress_inferences_are_visible_without_a_flush() -> None:
    metrics = Metrics("iris", "1")
    metrics.inference_started()
    metrics.inference_started()
    metrics.inference_finished(0.001, failed=False)
    assert _in_progress(metrics) == 1


def test_in_progress_slots_count_live_forked_workers_only_and_are_reused() -> None:
    """Workers forked after the Metrics are made each count in their slot; the scrape (here the parent)
    sums the live ones; a killed worker's running inference stops counting and its slot is reused."""
    metrics = Metrics("iris", "1")
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()

    def worker(inferences: int, started: Any) -> None:
        metrics.worker_started()
        for _ in range(inferences):
            metrics.inference_started()
        started.set()
        release.wait(30)
        for _ in range(inferences):
            metrics.inference_finished(0.001, failed=False)
        metrics.worker_stopping()

    def killed_worker(started: Any) -> None:
        # Not waiting on `release`: a process killed inside a multiprocessing wait breaks the Event.
        metrics.worker_started()
        metrics.inference_started()
        started.set()
        time.sleep(60)

    second_started = context.Event()
    first = context.Process(target=worker, args=(2, ready))
    second = context.Process(target=killed_worker, args=(second_started,))
    first.start()
    second.start()
    try:
        assert ready.wait(30) and second_started.wait(30)
        assert _in_progress(metrics) == 3
        os.kill(second.pid, signal.SIGKILL)  # OOM-killed in the middle of an inference
        second.join(30)
        assert _in_progress(metrics) == 2
        replacement_started = context.Event()
        replacement = context.Process(target=worker, args=(1, replacement_started))
        replacement.start()
        assert replacement_started.wait(30)
        assert _in_progress(metrics) == 3
        release.set()
        for process in (first, replacement):
            process.join(30)
            assert process.exitcode == 0
        assert _in_progress(metrics) == 0
    finally:
        release.set()
        for process in (first, second):
            if process.is_alive():
                process.kill()
