"""Prometheus metrics, aggregated across the server's worker processes with prometheus_client's multiprocess mode.

prometheus_client picks its value storage when it is first imported: PROMETHEUS_MULTIPROC_DIR must be
set before that (the serve command does it), otherwise each worker would report only its own counts.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The service's metrics; one instance per Flask app so tests can build many apps."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model_name: str, model_version: str) -> None:
        self._multiprocess_dir = multiprocess_dir()
        if self._multiprocess_dir and values.ValueClass is values.MutexValue:
            raise RuntimeError("PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported")
        # In multiprocess mode the values live in files; a scrape reads them through a fresh collector.
        self._registry = None if self._multiprocess_dir else CollectorRegistry()
        self._model_labels = (model_name, model_version)
        self.requests = Counter(
            "ai_app_http_requests_total",
            "Requests handled, by protocol (rest or grpc), method, route template (gRPC: the full method) "
            "and status (HTTP code, or gRPC status name).",
            ["protocol", "method", "route", "status", "model", "version"],
            registry=self._registry,
        )
        self.request_duration = Histogram(
            "ai_app_http_request_duration_seconds",
            "Time from request start to response, by protocol, method and route template.",
            ["protocol", "method", "route", "model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.inference_duration = Histogram(
            "ai_app_model_inference_duration_seconds",
            "Time spent in onnxruntime per infer request.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self._registry,
        ).labels(*self._model_labels)
        self.inferences_in_progress = Gauge(
            "ai_app_model_inferences_in_progress",
            "Infer requests currently inside onnxruntime, summed over live workers.",
            ["model", "version"],
            multiprocess_mode="livesum",
            registry=self._registry,
        ).labels(*self._model_labels)
        self.inference_failures = Counter(
            "ai_app_model_inference_failures_total",
            "Infer requests onnxruntime rejected or failed.",
            ["model", "version"],
            registry=self._registry,
        ).labels(*self._model_labels)
        # Label lookups take a lock and build tuples; the few children in use are cached here.
        self._request_children: dict[tuple[str, str, int | str, str], tuple[Counter, Histogram]] = {}

    def observe_request(
        self, method: str, route: str, status: int | str, seconds: float, protocol: str = "rest"
    ) -> None:
        """Count one request; `status` is the HTTP code (REST) or the gRPC status code's name (grpc)."""
        key = (method, route, status, protocol)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(protocol, method, route, str(status), *self._model_labels),
                self.request_duration.labels(protocol, method, route, *self._model_labels),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        if self._multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self._registry)
