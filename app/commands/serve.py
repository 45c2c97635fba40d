"""`serve`: verify and load the model once, then run granian workers that share it (forked)."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path

from app.config import ConfigError, load_settings
from app.logs import configure_logging

logger = logging.getLogger("app.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default: $BIND_HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on (default: $PORT or 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default: $WEB_CONCURRENCY or 2)")
    parser.add_argument("--threads", type=int, help="app threads per worker (default: $WEB_THREADS or 1)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port, 0 for none (default: $GRPC_PORT or 0)")
    parser.add_argument("--grpc-workers", type=int, help="gRPC worker processes (default: $GRPC_WORKERS or 1)")


def _metrics_dir() -> tuple[Path, bool]:
    """The prometheus multiprocess directory, emptied of a previous run's files; True if we made it."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    # tempfile honours TMPDIR and defaults to the system temporary directory, the only writable path
    # in the image (its root filesystem is read-only).
    return Path(tempfile.mkdtemp(prefix="ai-app-metrics-")), True


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"ai-app serve: {exc}", file=sys.stderr)
        return 2
    overrides = {
        "BIND_HOST": args.host,
        "PORT": args.port,
        "WEB_CONCURRENCY": args.workers,
        "WEB_THREADS": args.threads,
        "GRPC_PORT": args.grpc_port,
        "GRPC_WORKERS": args.grpc_workers,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.LOG_LEVEL)
    if settings.GRPC_PORT and settings.GRPC_PORT == settings.PORT:
        logger.error(f"GRPC_PORT and PORT are both {settings.PORT}; gRPC needs a port of its own")
        return 2
    if not 0 <= settings.GRPC_PORT <= 65535 or settings.GRPC_WORKERS < 1:
        logger.error(
            f"GRPC_PORT={settings.GRPC_PORT}, GRPC_WORKERS={settings.GRPC_WORKERS}: "
            "need a port from 0 (no gRPC) to 65535 and at least 1 worker"
        )
        return 2
    if not settings.MODEL_PATH:
        logger.error("MODEL_PATH is not set; point it at the ONNX model file to serve")
        return 2

    metrics_dir, created = _metrics_dir()
    # Must precede the first import of prometheus_client (app.server imports it).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    settings = dataclasses.replace(settings, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    master_pid = os.getpid()
    try:
        from app import http_server
        from app.model import ModelDigestMismatch, ModelError
        from app.server import create_app

        # Shared memory inherited by the forked workers: the master sets it on SIGTERM.
        draining = multiprocessing.RawValue("b", 0)
        try:
            app = create_app(settings)
            app.extensions["ai_app"].draining = draining
        except ModelDigestMismatch as exc:
            logger.error(str(exc), extra={"expected_sha256": exc.expected, "actual_sha256": exc.actual})
            return 1
        except ModelError as exc:
            logger.error(str(exc))
            return 1
        # Everything built so far (modules, the app, the model) lives as long as the process. Frozen,
        # the cyclic collector no longer walks it: full collections in a loaded worker took ~20 ms
        # (a latency spike for every request queued behind them) and now take well under 1 ms, and
        # collections no longer write to these pages, which stay shared between the forked workers.
        gc.collect()
        gc.freeze()
        try:
            http_server.run(app, settings, draining)
        except SystemExit as exc:
            # Forked workers unwind through here too; only the arbiter turns the exit into a code.
            if os.getpid() != master_pid:
                raise
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    finally:
        if created and os.getpid() == master_pid:
            shutil.rmtree(metrics_dir, ignore_errors=True)
