"""Open Inference Protocol (V2) REST endpoints, with the binary tensor data extension.

Usage, including how classifier labels and probabilities appear: docs/inference-api.md. Bodies are
decoded and encoded by app/v2/codec.py. The infer route is the hot path, so it is a small WSGI layer
in front of Flask (InferRoute); every other route is Flask's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from flask import Blueprint, Response, current_app

from app.state import ServiceState
from app.v2.codec import (
    JSON,
    V2Error,
    check_content_type,
    check_request_id,
    check_response_size,
    decode_inputs,
    encode_response,
    error_body,
    read_body,
    requested_outputs,
    split_body,
)
from app.v2.inference import find_model, loaded_model, run_model

logger = logging.getLogger("app.v2")

# The route templates label metrics and logs, the same strings Flask's url rules would give.
INFER_ROUTE = "/v2/models/<name>/infer"
INFER_VERSION_ROUTE = "/v2/models/<name>/versions/<version>/infer"
# Flask's default <name> converter: one path segment.
_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

def error_response(message: str, status: int) -> Response:
    return Response(error_body(message), status=status, mimetype=JSON)


def _json_response(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, mimetype=JSON)


# --- routes ------------------------------------------------------------------------------------


def create_blueprint(state: ServiceState) -> Blueprint:
    """The V2 routes of one app but infer (InferRoute serves that), bound to the app's state."""
    v2 = Blueprint("v2", __name__, url_prefix="/v2")

    @v2.errorhandler(V2Error)
    def _v2_error(exc: V2Error) -> Response:
        return error_response(exc.message, exc.status)

    @v2.get("/health/live")
    def live() -> Response:
        return _json_response({"live": True})

    @v2.get("/health/ready")
    def ready() -> Response:
        loaded_model(state)
        if state.is_draining:
            raise V2Error("shutting down", 503)
        return _json_response({"ready": True})

    @v2.get("")
    @v2.get("/")
    def server_metadata() -> Response:
        settings = current_app.config
        return _json_response(
            {"name": "ai-app", "version": settings["APP_VERSION"], "extensions": ["binary_tensor_data"]}
        )

    @v2.get("/models/<name>")
    @v2.get("/models/<name>/versions/<version>")
    def model_metadata(name: str, version: str | None = None) -> Response:
        return _json_response(find_model(state, name, version).metadata())

    @v2.get("/models/<name>/ready")
    @v2.get("/models/<name>/versions/<version>/ready")
    def model_ready(name: str, version: str | None = None) -> Response:
        model = find_model(state, name, version)
        return _json_response({"name": model.name, "ready": True})

    return v2


def infer(
    state: ServiceState, environ: dict[str, Any], name: str, version: str | None
) -> tuple[bytes, list[tuple[str, str]]]:
    """Run one infer request; returns the 200 response's body and headers, raises V2Error for bad ones."""
    model = find_model(state, name, version)
    check_content_type(environ)
    payload, binary = split_body(environ, read_body(environ, state.max_request_bytes))
    check_request_id(payload)
    feeds = decode_inputs(model, payload, binary)
    names, binary_flags = requested_outputs(model, payload)
    results = run_model(state, model, feeds, names)
    check_response_size(binary_flags, results, state.max_response_bytes)
    return encode_response(model, payload, names, binary_flags, results)


class InferRoute:
    """WSGI layer serving POST /v2/models/<name>[/versions/<version>]/infer; other paths go to Flask.

    The infer route is the service's hot path, and Flask's per-request machinery (contexts, URL
    map, request and response objects, hooks) cost more CPU than decoding, running and encoding a
    small request. Semantics match the Flask routes': the route template in environ for metrics
    and logs, JSON errors, 405 with Allow for other methods, 500 (logged) for unexpected errors.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], state: ServiceState) -> None:
        self.wsgi_app = wsgi_app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _INFER_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return self.wsgi_app(environ, start_response)
        name, version = match.groups()
        environ["ai_app.route"] = INFER_ROUTE if version is None else INFER_VERSION_ROUTE
        headers: list[tuple[str, str]] = []
        if environ.get("REQUEST_METHOD") != "POST":
            status, body = 405, error_body("The method is not allowed for the requested URL.")
            headers.append(("Allow", "POST"))
        else:
            try:
                # PATH_INFO holds the raw bytes as latin-1 (PEP 3333); names are UTF-8, as Werkzeug reads them.
                if not name.isascii() or (version is not None and not version.isascii()):
                    name = name.encode("latin-1").decode("utf-8", "replace")
                    version = version.encode("latin-1").decode("utf-8", "replace") if version else version
                body, headers = infer(self.state, environ, name, version)
                status = 200
            except V2Error as exc:
                status, body = exc.status, error_body(exc.message)
            except Exception:
                logger.exception("unhandled error", extra={"request_id": environ.get("ai_app.request_id")})
                status, body = 500, error_body("internal server error")
        if status != 200:
            headers += [("Content-Type", JSON), ("Content-Length", str(len(body)))]
        start_response(_STATUS_LINES[status], headers)
        return [body]
