"""The body of one gRPC worker process: grpcio's threaded server on GRPC_PORT until SIGTERM.

Runs only in a process forked from the serve command's main process, which has loaded and verified
the model but never imported grpc: gRPC's fork support covers clients only, and a gRPC server (its
core threads and polling) must be created after the fork, never before it (grpc/grpc
doc/fork_support.md, examples/python/multiprocessing). Several such processes share the port with
SO_REUSEPORT (gRPC sets it by default on Linux), the kernel spreading connections over them.
"""

from __future__ import annotations

import logging
import signal
import threading

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from app.config import Settings
from app.logs import flush_batched_logs
from app.metrics import FLUSH_SECONDS
from app.oip_grpc.call_threads import CallThreads
from app.oip_grpc.service import SERVICE_NAME, InferenceServicer, add_to_server
from app.state import ServiceState

logger = logging.getLogger("app.grpc")

# How often the worker looks at the shared draining flag (set by the main process on SIGTERM).
_DRAIN_POLL_SECONDS = 0.2
# Threads that run calls in each worker (app/oip_grpc/call_threads.py): with 2, one runs Python while
# the other waits for gRPC core; 1 left calls waiting on that hand-off, more fought over the GIL.
CALL_THREADS = 2
# A call whose request message has not come this long after its headers is a stalled client's: it
# gets a thread of its own, and fresh calls keep CALL_THREADS.
STALL_SECONDS = 0.1
# Room for the protobuf framing around raw outputs already bounded by MAX_RESPONSE_BYTES.
_RESPONSE_FRAMING_BYTES = 1024 * 1024


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Channel arguments of the gRPC server (grpc/grpc include/grpc/impl/channel_arg_names.h)."""
    return [
        # Larger request messages get RESOURCE_EXHAUSTED from gRPC itself, before any Python runs.
        ("grpc.max_receive_message_length", settings.MAX_REQUEST_BYTES),
        ("grpc.max_send_message_length", settings.MAX_RESPONSE_BYTES + _RESPONSE_FRAMING_BYTES),
        ("grpc.so_reuseport", 1),
        # A connection with no call for this long is closed (GOAWAY), like REST's keep-alive limit.
        ("grpc.max_connection_idle_ms", settings.HEADER_TIMEOUT * 1000),
        # Ping connections that carry calls but send nothing, so dead peers do not hold them forever.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Clients may ping every 10 s (tritonclient's keepalive default is longer) without a GOAWAY.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


def build_server(settings: Settings, call_threads: CallThreads) -> grpc.Server:
    """grpcio's threaded server with the service's options, its calls run on `call_threads`."""
    return grpc.server(
        call_threads, options=server_options(settings), maximum_concurrent_rpcs=settings.MAX_CONNECTIONS
    )


def new_call_threads(settings: Settings) -> CallThreads:
    # Every call the server admits (MAX_CONNECTIONS) may be one a client stalls, and holds a thread.
    return CallThreads(core=CALL_THREADS, limit=settings.MAX_CONNECTIONS, stall_seconds=STALL_SECONDS)


def serve(state: ServiceState, settings: Settings) -> None:
    """Serve until SIGTERM, then stop accepting calls and give running ones GRACEFUL_TIMEOUT."""
    call_threads = new_call_threads(settings)
    server = build_server(settings, call_threads)
    add_to_server(InferenceServicer(state, settings, request_received=call_threads.request_received), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{settings.BIND_HOST}:{settings.GRPC_PORT}"
    if ":" in settings.BIND_HOST:
        address = f"[{settings.BIND_HOST}]:{settings.GRPC_PORT}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address} for gRPC: {exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    # "" is the server as a whole, what a Kubernetes grpc probe without `service` asks about.
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, serving)
    logger.info("gRPC server listening", extra={"address": address})

    flushing = threading.Thread(target=_flush_metrics, args=(state, stop), name="grpc-flush", daemon=True)
    flushing.start()
    while not stop.is_set() and not state.is_draining:
        stop.wait(_DRAIN_POLL_SECONDS)
    # Draining (the main process got SIGTERM): probes and ServerReady fail at once; calls are still
    # served until this process gets its own SIGTERM, after SHUTDOWN_DELAY.
    health_servicer.enter_graceful_shutdown()
    while not stop.wait(_DRAIN_POLL_SECONDS):
        pass
    logger.info("gRPC server stopping", extra={"graceful_timeout": settings.GRACEFUL_TIMEOUT})
    server.stop(settings.GRACEFUL_TIMEOUT).wait()
    call_threads.shutdown(wait=False, cancel_futures=True)


def _flush_metrics(state: ServiceState, stop: threading.Event) -> None:
    """Write the batched request counts and access log lines every FLUSH_SECONDS (app/metrics.py, app/logs.py)."""
    while not stop.wait(FLUSH_SECONDS):
        try:
            state.metrics.flush()
            flush_batched_logs()
        except Exception:
            logger.exception("writing metrics or logs failed")


def run_worker(state: ServiceState, settings: Settings) -> None:
    """Entry point in the forked process."""
    # The main process's handlers came along with the fork; this process stops on SIGTERM alone
    # (the main process sends it), so a Ctrl-C to the process group does not skip the drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    model = state.model
    if model is not None and model.needs_reopen_after_fork:
        model.reopen_after_fork()
    state.metrics.worker_started()
    try:
        serve(state, settings)
    finally:
        state.metrics.worker_stopping()
        state.metrics.flush()
        flush_batched_logs()
