"""Prometheus metrics, aggregated across the server's worker processes with prometheus_client's multiprocess mode.

prometheus_client picks its value storage when it is first imported: PROMETHEUS_MULTIPROC_DIR must be
set before that (the serve command does it), otherwise each worker would report only its own counts.

Requests are counted in plain Python first and written to prometheus_client's values in batches
(`flush`): in multiprocess mode every increment is a locked write to a memory-mapped file with a
getpid() check, seven per infer request, which cost as much CPU as the inference itself. Each worker
flushes every FLUSH_SECONDS (the HTTP front's and the gRPC server's timers) and when it stops, and
a scrape flushes the answering worker first, so /metrics lags the other workers' latest requests by
at most FLUSH_SECONDS. The in-progress gauge must be current (a scrape during a long inference has to
see it), so each worker keeps its count in a slot of memory shared by the forked workers
(InProgressSlots): one store per change instead of a locked file write.
"""

from __future__ import annotations

import bisect
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("app.metrics")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How often a worker writes its batched counts to the shared values (at most this stale on /metrics).
FLUSH_SECONDS = 0.5


class _PendingHistogram:
    """Observations of one histogram child not yet written: their sum and a count per bucket."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.sum = 0.0
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one is +Inf

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        # prometheus_client's rule: an observation goes in the first bucket whose bound is >= it.
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1

    def write_to(self, child: Histogram) -> None:
        # Histogram.observe has no batch form; these are the values it increments (_sum, _buckets),
        # tests/app/test_metrics.py checks that a flush exposes what direct observations do.
        child._sum.inc(self.sum)
        for bucket, count in zip(child._buckets, self.counts, strict=True):
            if count:
                bucket.inc(count)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InProgressSlots:
    """Inferences running now, one slot per worker process in memory shared across fork().

    Made before the workers fork; each worker `claim`s a slot when it starts (a slot whose owner
    is gone is reused, so a replaced worker's count stops counting) and changes only its own, so
    no lock between processes is needed. `total` sums the slots of live owners. A process that
    has no slot (the model served in-process, in tests) counts in `local`.
    """

    def __init__(self, slots: int = 256) -> None:
        self._owners = multiprocessing.RawArray("q", slots)
        self._counts = multiprocessing.RawArray("q", slots)
        self._claiming = multiprocessing.Lock()
        self._slot: int | None = None
        self.local = 0

    def claim(self) -> None:
        pid = os.getpid()
        with self._claiming:
            for index, owner in enumerate(self._owners):
                if owner in (0, pid) or not _alive(owner):
                    self._owners[index], self._counts[index] = pid, 0
                    self._slot = index
                    return
        logger.warning("no in-progress slot left: this worker's running inferences are not on /metrics",
                       extra={"slots": len(self._owners)})

    def release(self) -> None:
        # Only by its owner (a child forked from a worker does not free its parent's slot).
        if self._slot is not None and self._owners[self._slot] == os.getpid():
            self._counts[self._slot] = 0
            self._owners[self._slot] = 0
        self._slot = None

    def add(self, change: int) -> None:
        # Called under Metrics._lock (pool threads of one worker share its slot).
        if self._slot is None:
            self.local += change
        else:
            self._counts[self._slot] += change

    def total(self) -> int:
        claimed = sum(count for owner, count in zip(self._owners, self._counts, strict=True)
                      if owner and count and _alive(owner))
        return claimed + self.local


class _InProgressCollector:
    """The in-progress gauge, read from the shared slots at scrape time."""

    def __init__(self, slots: InProgressSlots, labels: tuple[str, str]) -> None:
        self.slots = slots
        self.labels = labels

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "ai_app_model_inferences_in_progress",
            "Infer requests currently inside onnxruntime, summed over live workers.",
            labels=["model", "version"],
        )
        gauge.add_metric(list(self.labels), self.slots.total())
        yield gauge


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
        self.inferences_in_progress = InProgressSlots()
        self._in_progress_collector = _InProgressCollector(self.inferences_in_progress, self._model_labels)
        if self._registry is not None:
            self._registry.register(self._in_progress_collector)
        self.inference_failures = Counter(
            "ai_app_model_inference_failures_total",
            "Infer requests onnxruntime rejected or failed.",
            ["model", "version"],
            registry=self._registry,
        ).labels(*self._model_labels)
        # Not yet written (see the module docstring); pool threads (WEB_THREADS > 1) count concurrently.
        self._lock = threading.Lock()
        # One flush at a time (the worker's timer and a scrape on a pool thread may coincide).
        self._flush_lock = threading.Lock()
        self._pending_requests: dict[tuple[str, str, int | str, str], _PendingHistogram] = {}
        self._pending_inference = _PendingHistogram()
        self._pending_failures = 0

    def observe_request(
        self, method: str, route: str, status: int | str, seconds: float, protocol: str = "rest"
    ) -> None:
        """Count one request; `status` is the HTTP code (REST) or the gRPC status code's name (grpc)."""
        key = (method, route, status, protocol)
        with self._lock:
            pending = self._pending_requests.get(key)
            if pending is None:
                pending = self._pending_requests[key] = _PendingHistogram()
            pending.observe(seconds)

    def worker_started(self) -> None:
        """In each forked worker before it serves: its slot for the in-progress gauge."""
        self.inferences_in_progress.claim()

    def worker_stopping(self) -> None:
        self.inferences_in_progress.release()

    def inference_started(self) -> None:
        # Current at once, unlike the counts: a scrape during a long inference must see it running
        # (in a worker with one app thread, no flush runs until the inference is over).
        with self._lock:
            self.inferences_in_progress.add(1)

    def inference_finished(self, seconds: float, failed: bool) -> None:
        with self._lock:
            self.inferences_in_progress.add(-1)
            self._pending_inference.observe(seconds)
            if failed:
                self._pending_failures += 1

    def flush(self) -> None:
        """Write the counts batched since the last flush to the (shared) prometheus values."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            requests, self._pending_requests = self._pending_requests, {}
            inference, self._pending_inference = self._pending_inference, _PendingHistogram()
            failures, self._pending_failures = self._pending_failures, 0
        for (method, route, status, protocol), pending in requests.items():
            self.requests.labels(protocol, method, route, str(status), *self._model_labels).inc(sum(pending.counts))
            pending.write_to(self.request_duration.labels(protocol, method, route, *self._model_labels))
        if any(inference.counts):
            inference.write_to(self.inference_duration)
        if failures:
            self.inference_failures.inc(failures)

    def render(self) -> bytes:
        # The flush lock is held while the files are read too: a flush on another thread (the timer)
        # may add keys to this process's file, which grows and is remapped under the reader.
        with self._flush_lock:
            self._flush()
            if self._multiprocess_dir:
                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry, path=self._multiprocess_dir)
                registry.register(self._in_progress_collector)
                return generate_latest(registry)
            return generate_latest(self._registry)
