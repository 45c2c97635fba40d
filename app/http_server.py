"""granian, run programmatically: the pre-built app (model loaded once) served by forked workers.

Options derive from Settings; what each one guards against is in docs/serving.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
from typing import Any

from flask import Flask
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import MPServer

from app.config import Settings
from app.front import MAX_HEADER_BYTES, HttpFront
from app.logs import flush_batched_logs, logging_config
from app.metrics import FLUSH_SECONDS
from app.oip_grpc.supervisor import GrpcWorkers

logger = logging.getLogger("app.serve")

# hyper's read buffer for a request's head: a request line and headers larger than this are refused
# by hyper itself (431, no body) before Python. Twice the front's MAX_HEADER_BYTES, so a head just
# over the front's limits still reaches the front, which answers it in JSON (docs/serving.md).
HEAD_BUFFER_BYTES = 2 * MAX_HEADER_BYTES


def build_front(app: Flask, settings: Settings) -> HttpFront:
    """The RSGI front of `app`, with the per-worker start and stop hooks of the service."""
    state = app.extensions["ai_app"]

    def on_worker_start() -> None:
        state.metrics.worker_started()
        model = state.model
        # Pool threads do not survive fork(): a session that owns them is rebuilt in the worker.
        if model is not None and model.needs_reopen_after_fork:
            model.reopen_after_fork()

    def on_worker_stop() -> None:
        # Its in-progress slot is freed; its counts are written (app/metrics.py).
        state.metrics.worker_stopping()
        state.metrics.flush()
        flush_batched_logs()

    def on_tick() -> None:
        # Batched request counts and access log lines leave the worker (app/metrics.py, app/logs.py).
        state.metrics.flush()
        flush_batched_logs()

    return HttpFront(
        app.wsgi_app,
        max_request_bytes=settings.MAX_REQUEST_BYTES,
        body_timeout=settings.BODY_TIMEOUT,
        threads=settings.WEB_THREADS,
        drain_timeout=settings.GRACEFUL_TIMEOUT,
        on_worker_start=on_worker_start,
        on_worker_stop=on_worker_stop,
        on_tick=on_tick,
        tick_seconds=FLUSH_SECONDS,
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """granian's MPServer arguments for `settings`."""
    workers = settings.WEB_CONCURRENCY
    return {
        "address": settings.BIND_HOST,
        "port": settings.PORT,
        "interface": Interfaces.RSGI,
        "workers": workers,
        # One Rust I/O thread per worker: parsing and socket I/O are a small share of a request.
        "runtime_threads": 1,
        # uvloop's call_soon_threadsafe wakes the loop through libuv's coalescing async handle;
        # asyncio's writes to its self-pipe on every call, and granian's I/O thread makes at least
        # one such call per request: measured 13-15% less CPU per one-row infer (docs/serving.md).
        "loop": Loops.uvloop,
        "http": HTTPModes.http1,
        "websockets": False,
        # granian's backpressure is a per-worker semaphore taken for each accepted connection, held
        # until the connection closes: MAX_CONNECTIONS is the pod's cap, split across workers.
        "backpressure": max(1, -(-settings.MAX_CONNECTIONS // workers)),
        "backlog": 2048,
        "http1_settings": HTTP1Settings(
            # hyper applies it to every request's headers, including the wait for the next request on
            # an idle keep-alive connection, so it is the keep-alive idle timeout too.
            header_read_timeout=settings.HEADER_TIMEOUT * 1000,
            keep_alive=True,
            max_buffer_size=HEAD_BUFFER_BYTES,
        ),
        "log_enabled": True,
        "log_level": LogLevels(settings.LOG_LEVEL.lower()),
        "log_dictconfig": logging_config(settings.LOG_LEVEL),
        "log_access": False,  # the app logs each request, with its request id
        # A worker that dies is replaced, as gunicorn's arbiter did.
        "respawn_failed_workers": True,
        # Workers drain in-flight requests for GRACEFUL_TIMEOUT; this is the hard stop after it.
        "workers_kill_timeout": settings.GRACEFUL_TIMEOUT + 5,
        "process_name": None,
    }


class InferenceServer(MPServer):
    """granian's multi-process server; SIGTERM first drains for SHUTDOWN_DELAY with readiness failing.

    During the delay the service keeps answering (load balancers and kube-proxy still route to
    it for a few seconds after a pod starts terminating), readiness answers 503 so nothing new is
    routed here, and then the workers stop accepting and finish what they have.
    """

    def __init__(
        self, settings: Settings, draining: Any, grpc_workers: GrpcWorkers | None = None, **options: Any
    ) -> None:
        super().__init__(target="ai-app", **options)
        self.shutdown_delay = settings.SHUTDOWN_DELAY
        self.graceful_timeout = settings.GRACEFUL_TIMEOUT
        self.draining = draining
        self.grpc_workers = grpc_workers
        self.failure: str | None = None
        self._interrupted = False

    # The gRPC workers start and stop with granian's own: both drain at the same time.

    def _spawn_workers(self, spawn_target: Any, target_loader: Any) -> None:
        super()._spawn_workers(spawn_target, target_loader)
        if self.grpc_workers is not None:
            self.grpc_workers.start()

    def _stop_workers(self) -> None:
        if self.grpc_workers is not None:
            self.grpc_workers.stop()
        super()._stop_workers()
        if self.grpc_workers is not None:
            self.grpc_workers.join(self.graceful_timeout + 5)

    def fail(self, reason: str) -> None:
        """Stop the service because a part of it cannot run (exit code 1)."""
        logger.error(reason)
        self.failure = reason
        self.draining.value = 1
        super().signal_handler_interrupt()

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        if self._interrupted:  # a second signal: stop now
            super().signal_handler_interrupt()
            return
        self._interrupted = True
        self.draining.value = 1
        if self.shutdown_delay <= 0:
            super().signal_handler_interrupt()
            return
        logger.info("shutdown requested; draining", extra={"shutdown_delay": self.shutdown_delay})
        timer = threading.Timer(self.shutdown_delay, super().signal_handler_interrupt)
        timer.daemon = True
        timer.start()


def run(app: Flask, settings: Settings, draining: Any) -> None:
    """Serve `app` (and gRPC when GRPC_PORT is set) until SIGTERM/SIGINT; raises SystemExit with the exit code."""
    # The app (and model) built in this process is inherited by the workers, copy-on-write: that
    # needs fork, whatever the platform's default start method.
    multiprocessing.set_start_method("fork", force=True)
    if settings.GRPC_PORT and "grpc" in sys.modules:
        # A gRPC runtime initialised here would be forked into every worker (docs/serving.md).
        raise RuntimeError("grpc was imported in the serve process before its workers were forked")
    front = build_front(app, settings)
    server = InferenceServer(settings, draining, **server_options(settings))
    if settings.GRPC_PORT:
        server.grpc_workers = GrpcWorkers(app.extensions["ai_app"], settings, on_failure=server.fail)
    server.serve(target_loader=lambda _target: front)
    if server.failure:
        raise SystemExit(1)
