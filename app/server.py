"""The Flask app factory: the app for a Settings object, the V2 and ops blueprints, request hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app.config import Settings
from app.logs import AccessLog
from app.metrics import Metrics
from app.model import OnnxModel
from app.request_ids import RequestIds
from app.state import ServiceState
from app.v2 import InferRoute, error_response
from app.v2 import create_blueprint as create_v2_blueprint

logger = logging.getLogger("app.server")

_KNOWN_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
# Probes and scrapes arrive every few seconds; logging them at INFO would drown the requests.
_QUIET_ROUTES = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})


def load_model(app: Flask) -> OnnxModel:
    """Load, verify and attach the configured model; raises app.model.ModelError."""
    config = app.config
    if not config["MODEL_PATH"]:
        raise ValueError("MODEL_PATH is not set")
    model = OnnxModel.load(
        config["MODEL_PATH"],
        name=config["MODEL_NAME"],
        version=config["MODEL_VERSION"],
        expected_sha256=config["MODEL_SHA256"],
        intra_op_threads=config["ORT_INTRA_OP_THREADS"],
        inter_op_threads=config["ORT_INTER_OP_THREADS"],
    )
    model.attach_card()
    app.extensions["ai_app"].model = model
    logger.info(
        "model loaded",
        extra={"model": model.name, "version": model.version, "sha256": model.sha256, "path": str(model.path)},
    )
    return model


def create_app(settings: Settings) -> Flask:
    """Build the app for `settings` (app.config.load_settings reads them); loads the model if MODEL_PATH is set.

    Raises app.model.ModelError (including a sha256 mismatch) when the model cannot be served.
    """
    app = Flask(__name__)
    app.config.update(settings.as_flask_config())
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_REQUEST_BYTES"]
    state = ServiceState(
        metrics=Metrics(app.config["MODEL_NAME"], app.config["MODEL_VERSION"]),
        max_request_bytes=settings.MAX_REQUEST_BYTES,
        max_response_bytes=settings.MAX_RESPONSE_BYTES,
    )
    app.extensions["ai_app"] = state
    app.register_blueprint(create_v2_blueprint(state))
    app.register_blueprint(_create_ops_blueprint())
    _register_hooks(app)
    if app.config["MODEL_PATH"]:
        load_model(app)
    return app


def _create_ops_blueprint() -> Blueprint:
    ops = Blueprint("ops", __name__)

    @ops.get("/version")
    def version() -> dict[str, Any]:
        config = current_app.config
        model = current_app.extensions["ai_app"].model
        return {
            "app_version": config["APP_VERSION"],
            "source_revision": config["SOURCE_REVISION"],
            "model": {
                "name": config["MODEL_NAME"],
                "version": config["MODEL_VERSION"],
                "sha256": model.sha256 if model is not None else None,
                "loaded": model is not None,
                "card": model.card_summary() if model is not None else None,
            },
        }

    @ops.get("/metrics")
    def metrics() -> Response:
        state = current_app.extensions["ai_app"]
        return Response(state.metrics.render(), content_type=state.metrics.content_type)

    return ops


class RequestObserver:
    """WSGI middleware: request id, latency metrics and one JSON access log line per request.

    A middleware rather than before/after_request hooks: it runs once per request without Flask's
    per-hook dispatch, and it also sees responses produced by error handlers.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], metrics: Metrics, access_log: bool) -> None:
        self.wsgi_app = wsgi_app
        self.metrics = metrics
        self.access_log = access_log
        self.access_lines = AccessLog()
        self.request_ids = RequestIds()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = self.request_ids.for_request(environ.get("HTTP_X_REQUEST_ID"))
        environ["ai_app.request_id"] = request_id
        status_line = ""

        def observed_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status_line
            status_line = status
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        # Flask returns fully built bodies here (no streaming views), so this is the response time.
        body = self.wsgi_app(environ, observed_start_response)
        seconds = time.perf_counter() - started
        status = int(status_line[:3]) if status_line else 500
        route = environ.get("ai_app.route", "unmatched")
        method = environ.get("REQUEST_METHOD", "")
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        self.metrics.observe_request(method, route, status, seconds, "rest")
        # Failed requests are always logged; ACCESS_LOG=false only drops the lines of successful ones.
        if status >= 400 or (self.access_log and route not in _QUIET_ROUTES):
            self.access_lines.request(
                {
                    "request_id": request_id,
                    "method": method,
                    "path": environ.get("PATH_INFO", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "remote_addr": environ.get("REMOTE_ADDR"),
                },
            )
        return body


def _register_hooks(app: Flask) -> None:
    state: ServiceState = app.extensions["ai_app"]
    app.wsgi_app = RequestObserver(  # type: ignore[method-assign]
        InferRoute(app.wsgi_app, state), state.metrics, app.config["ACCESS_LOG"]
    )

    @app.url_value_preprocessor
    def _record_route(endpoint: str | None, values: dict[str, Any] | None) -> None:
        # The route template (not the path) labels metrics, so unknown model names cannot add series.
        rule = request.url_rule
        if rule is not None:
            request.environ["ai_app.route"] = rule.rule

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body exceeds MAX_REQUEST_BYTES ({app.config['MAX_REQUEST_BYTES']} bytes)"
        response = error_response(message, exc.code or 500)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"request_id": request.environ.get("ai_app.request_id")})
        return error_response("internal server error", 500)
