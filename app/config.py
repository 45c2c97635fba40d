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
    # Gunicorn's own convention; 2 processes suit a pod with a 1-2 CPU limit.
    WEB_CONCURRENCY: int = 2
    # Threads per worker (gthread). Inference is CPU-bound, so more threads only add GIL contention
    # (measured: 4 threads doubled p99 against 2); the poller keeps idle keep-alive connections anyway.
    WEB_THREADS: int = 2
    # Seconds a worker may stay silent before the arbiter replaces it.
    WORKER_TIMEOUT: int = 60
    # Seconds in-flight requests get after SIGTERM; below Kubernetes' default 30 s grace period.
    GRACEFUL_TIMEOUT: int = 25
    # Longer than common load balancer idle timeouts (Azure LB 4 min is the upper bound; nginx 60 s).
    KEEPALIVE: int = 65
    MODEL_PATH: str | None = None
    MODEL_SHA256: str | None = None
    MODEL_NAME: str = "model"
    MODEL_VERSION: str = "1"
    APP_VERSION: str = ""
    SOURCE_REVISION: str = "unknown"
    MAX_REQUEST_BYTES: int = 8 * 1024 * 1024
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
        PORT=_int(env, "PORT", 8080, 1),
        BIND_HOST=(env.get("BIND_HOST") or "0.0.0.0").strip(),
        WEB_CONCURRENCY=_int(env, "WEB_CONCURRENCY", 2, 1),
        WEB_THREADS=_int(env, "WEB_THREADS", 2, 1),
        WORKER_TIMEOUT=_int(env, "WORKER_TIMEOUT", 60, 1),
        GRACEFUL_TIMEOUT=_int(env, "GRACEFUL_TIMEOUT", 25, 0),
        KEEPALIVE=_int(env, "KEEPALIVE", 65, 0),
        MODEL_PATH=(env.get("MODEL_PATH") or "").strip() or None,
        MODEL_SHA256=sha256,
        MODEL_NAME=(env.get("MODEL_NAME") or "model").strip(),
        MODEL_VERSION=(env.get("MODEL_VERSION") or "1").strip(),
        APP_VERSION=(env.get("APP_VERSION") or "").strip() or _package_version(),
        SOURCE_REVISION=(env.get("SOURCE_REVISION") or "unknown").strip(),
        MAX_REQUEST_BYTES=_int(env, "MAX_REQUEST_BYTES", 8 * 1024 * 1024, 1),
        ORT_INTRA_OP_THREADS=_int(env, "ORT_INTRA_OP_THREADS", 1, 1),
        ORT_INTER_OP_THREADS=_int(env, "ORT_INTER_OP_THREADS", 1, 1),
        LOG_LEVEL=log_level,
        ACCESS_LOG=_bool(env, "ACCESS_LOG", True),
        PROMETHEUS_MULTIPROC_DIR=(env.get("PROMETHEUS_MULTIPROC_DIR") or "").strip() or None,
    )
