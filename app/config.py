"""Service settings read from the environment (12-factor); one place that knows every variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from importlib import metadata
from typing import Any

from app.modelstore.digest import normalize_sha256


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _package_version() -> str:
    try:
        return metadata.version("ai-app-gitops")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be >= {minimum}")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment.

    Field names are the Flask config keys (upper case) so `create_app` can take either.
    """

    PORT: int = 8080
    BIND_HOST: str = "0.0.0.0"
    # Worker processes (the name is the common convention); 2 suits a pod with a 1-2 CPU limit.
    # The model is loaded once before they fork and shared.
    WEB_CONCURRENCY: int = 2
    # Threads per worker running the app. 1: on the worker's event loop, one request at a time (the
    # least CPU per request). N > 1: a pool of N, so a short request can pass a long one, for N
    # requests' peak memory per worker (docs/serving.md).
    WEB_THREADS: int = 1
    # Seconds a request's headers may take to arrive, and an idle keep-alive connection may wait for
    # its next request; longer than common load balancer idle timeouts (nginx 60 s).
    HEADER_TIMEOUT: int = 65
    # Seconds a request body may take to arrive once the headers are in (408 after that).
    BODY_TIMEOUT: int = 30
    # Open connections the pod accepts (split across workers); more wait in the listen backlog.
    MAX_CONNECTIONS: int = 4096
    # Seconds in-flight requests get after the workers are told to stop; below Kubernetes' 30 s grace.
    GRACEFUL_TIMEOUT: int = 20
    # Seconds the service keeps serving after SIGTERM, readiness failing, before it stops accepting.
    SHUTDOWN_DELAY: int = 0
    # Port of the Open Inference Protocol's gRPC API (app/oip_grpc); 0: no gRPC server.
    GRPC_PORT: int = 0
    # gRPC server processes, forked from the main process beside the HTTP workers and sharing the
    # model; they share the port (SO_REUSEPORT), the kernel spreading connections over them.
    GRPC_WORKERS: int = 1
    MODEL_PATH: str | None = None
    MODEL_SHA256: str | None = None
    MODEL_NAME: str = "model"
    MODEL_VERSION: str = "1"
    APP_VERSION: str = ""
    SOURCE_REVISION: str = "unknown"
    MAX_REQUEST_BYTES: int = 8 * 1024 * 1024
    # Largest infer response the service builds; requests whose outputs would be larger get 413
    # before inference. With MAX_REQUEST_BYTES it bounds a request's peak memory (docs/serving.md).
    MAX_RESPONSE_BYTES: int = 32 * 1024 * 1024
    # onnxruntime threads per worker; 1 is the lowest latency for small batches with several workers.
    ORT_INTRA_OP_THREADS: int = 1
    ORT_INTER_OP_THREADS: int = 1
    LOG_LEVEL: str = "INFO"
    ACCESS_LOG: bool = True
    PROMETHEUS_MULTIPROC_DIR: str | None = None

    def as_flask_config(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read Settings from `environ` (default: os.environ); raise ConfigError naming the bad variable."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    sha256 = None
    if raw_sha256 := (env.get("MODEL_SHA256") or "").strip():
        try:
            sha256 = normalize_sha256(raw_sha256, "MODEL_SHA256")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    log_level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL={log_level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return Settings(
        PORT=_int(env, "PORT", defaults.PORT, 1),
        BIND_HOST=(env.get("BIND_HOST") or "0.0.0.0").strip(),
        WEB_CONCURRENCY=_int(env, "WEB_CONCURRENCY", defaults.WEB_CONCURRENCY, 1),
        WEB_THREADS=_int(env, "WEB_THREADS", defaults.WEB_THREADS, 1),
        HEADER_TIMEOUT=_int(env, "HEADER_TIMEOUT", defaults.HEADER_TIMEOUT, 1),
        BODY_TIMEOUT=_int(env, "BODY_TIMEOUT", defaults.BODY_TIMEOUT, 1),
        MAX_CONNECTIONS=_int(env, "MAX_CONNECTIONS", defaults.MAX_CONNECTIONS, 1),
        GRACEFUL_TIMEOUT=_int(env, "GRACEFUL_TIMEOUT", defaults.GRACEFUL_TIMEOUT, 0),
        SHUTDOWN_DELAY=_int(env, "SHUTDOWN_DELAY", defaults.SHUTDOWN_DELAY, 0),
        GRPC_PORT=_int(env, "GRPC_PORT", defaults.GRPC_PORT, 0),
        GRPC_WORKERS=_int(env, "GRPC_WORKERS", defaults.GRPC_WORKERS, 1),
        MODEL_PATH=(env.get("MODEL_PATH") or "").strip() or None,
        MODEL_SHA256=sha256,
        MODEL_NAME=(env.get("MODEL_NAME") or "model").strip(),
        MODEL_VERSION=(env.get("MODEL_VERSION") or "1").strip(),
        APP_VERSION=(env.get("APP_VERSION") or "").strip() or _package_version(),
        SOURCE_REVISION=(env.get("SOURCE_REVISION") or "unknown").strip(),
        MAX_REQUEST_BYTES=_int(env, "MAX_REQUEST_BYTES", defaults.MAX_REQUEST_BYTES, 1),
        MAX_RESPONSE_BYTES=_int(env, "MAX_RESPONSE_BYTES", defaults.MAX_RESPONSE_BYTES, 1),
        ORT_INTRA_OP_THREADS=_int(env, "ORT_INTRA_OP_THREADS", defaults.ORT_INTRA_OP_THREADS, 1),
        ORT_INTER_OP_THREADS=_int(env, "ORT_INTER_OP_THREADS", defaults.ORT_INTER_OP_THREADS, 1),
        LOG_LEVEL=log_level,
        ACCESS_LOG=_bool(env, "ACCESS_LOG", True),
        PROMETHEUS_MULTIPROC_DIR=(env.get("PROMETHEUS_MULTIPROC_DIR") or "").strip() or None,
    )
