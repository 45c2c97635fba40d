"""Open Inference Protocol (V2) REST endpoints, with the binary tensor data extension.

Spec: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
Usage, including how classifier labels and probabilities appear: docs/inference-api.md.
Request and response bodies are parsed and built by hand (orjson + numpy) because this is the hot
path: no schema library, no per-request objects beyond the tensors themselves. For the same reason
the infer route is a small WSGI layer in front of Flask (InferRoute); every other route is Flask's.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, current_app
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from app.model import OnnxModel
from app.state import ServiceState

logger = logging.getLogger("app.v2")

_HEADER_LENGTH = "Inference-Header-Content-Length"
_JSON = "application/json"
_OCTET_STREAM = "application/octet-stream"
# The route templates label metrics and logs, the same strings Flask's url rules would give.
INFER_ROUTE = "/v2/models/<name>/infer"
INFER_VERSION_ROUTE = "/v2/models/<name>/versions/<version>/infer"
# Flask's default <name> converter: one path segment.
_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

# V2 datatype -> numpy dtype in the wire byte order (little endian).
_DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
# numpy kinds accepted in JSON data for each family of datatypes (JSON has no int/float distinction
# beyond the literal, so integers are fine for floats but 1.5 is not an INT64).
_FLOAT_KINDS = frozenset("iuf")
_INT_KINDS = frozenset("iu")


class V2Error(Exception):
    """A request the protocol rejects; becomes {"error": message} with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def error_body(message: str) -> bytes:
    """The protocol's error body, {"error": message}, for Flask views and the WSGI infer route alike."""
    return orjson.dumps({"error": message})


def error_response(message: str, status: int) -> Response:
    return Response(error_body(message), status=status, mimetype=_JSON)


def _json_response(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, mimetype=_JSON)


def _loaded_model(state: ServiceState) -> OnnxModel:
    model = state.model
    if model is None:
        raise V2Error("model is not loaded yet", 503)
    return model


def _find_model(state: ServiceState, name: str, version: str | None) -> OnnxModel:
    model = _loaded_model(state)
    if name != model.name:
        raise V2Error(f"model {name!r} not found; this server serves {model.name!r}", 404)
    if version is not None and version != model.version:
        raise V2Error(f"model {name!r} version {version!r} not found; available versions: [{model.version!r}]", 404)
    return model


# --- request decoding --------------------------------------------------------------------------


def _read_body(environ: dict[str, Any], max_bytes: int) -> bytes:
    """The request body, decompressed when the client used Content-Encoding (tritonclient can)."""
    length = environ.get("CONTENT_LENGTH")
    if length:
        # Read the sized body straight from the server's stream: Werkzeug's stream wrapping costs
        # more than the rest of a small request's decoding. Chunked bodies go through Werkzeug.
        try:
            size = int(length)
        except ValueError:
            raise V2Error(f"Content-Length {length!r} is not an integer") from None
        if size > max_bytes:
            raise V2Error(f"request body exceeds MAX_REQUEST_BYTES ({max_bytes} bytes)", 413)
        body = environ["wsgi.input"].read(size)
        if len(body) != size:
            raise V2Error(f"request body has {len(body)} bytes, Content-Length says {size}")
    else:
        # Chunked (or unsized) bodies: Werkzeug's stream reads to the end, bounded by max_bytes.
        try:
            body = get_input_stream(environ, max_content_length=max_bytes).read()
        except RequestEntityTooLarge:
            raise V2Error(f"request body exceeds MAX_REQUEST_BYTES ({max_bytes} bytes)", 413) from None
    encoding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decompressor = zlib.decompressobj()
    else:
        raise V2Error(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none", 415)
    try:
        # max_length bounds the output so a small compressed body cannot expand without limit.
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise V2Error(f"request body is not valid {encoding} data: {exc}") from None
    if len(data) > max_bytes:
        raise V2Error(f"decompressed request body exceeds MAX_REQUEST_BYTES ({max_bytes} bytes)", 413)
    return data


def _split_body(environ: dict[str, Any], body: bytes) -> tuple[dict[str, Any], memoryview | None]:
    """Split an infer body into its JSON header and, with the binary extension, the binary part."""
    header_length = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
    binary = None
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise V2Error(f"{_HEADER_LENGTH} header {header_length!r} is not an integer") from None
        if not 0 <= length <= len(body):
            raise V2Error(f"{_HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
        binary = memoryview(body)[length:]
        body = body[:length]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise V2Error(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise V2Error("request body must be a JSON object with an 'inputs' list")
    return payload, binary


def _check_content_type(environ: dict[str, Any]) -> None:
    # Clients that send JSON without a Content-Type (tritonclient does) are accepted.
    content_type = environ.get("CONTENT_TYPE")
    if not content_type or content_type == _JSON:
        return
    mimetype = content_type.partition(";")[0].strip().lower()
    if mimetype not in (_JSON, _OCTET_STREAM):
        raise V2Error(f"unsupported Content-Type {mimetype!r}; send {_JSON}", 415)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise V2Error(f"{where}.shape must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def _check_int_range(array: np.ndarray, dtype: np.dtype, datatype: str, where: str) -> None:
    # astype() wraps around silently; compare as Python ints so uint64/int64 edges are exact too.
    if array.size:
        info = np.iinfo(dtype)
        if int(array.min()) < info.min or int(array.max()) > info.max:
            raise V2Error(f"{where}.data has values outside the range of {datatype}")


def _from_json_data(data: Any, datatype: str, dtype: np.dtype, count: int, where: str) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        flat = _flatten(data, where)
        if not all(isinstance(item, str) for item in flat):
            raise V2Error(f"{where}.data must hold strings for datatype BYTES")
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        try:
            array = np.array(data)
        except ValueError as exc:  # ragged nesting
            raise V2Error(f"{where}.data is not a regular nested list: {exc}") from None
        kind = array.dtype.kind
        if datatype == "BOOL":
            if kind != "b":
                raise V2Error(f"{where}.data must hold true/false for datatype BOOL")
        elif dtype.kind == "f":
            if kind not in _FLOAT_KINDS:
                raise V2Error(f"{where}.data must hold numbers for datatype {datatype}")
        elif kind not in _INT_KINDS:
            raise V2Error(f"{where}.data must hold integers for datatype {datatype}")
        else:
            _check_int_range(array, dtype, datatype, where)
        if array.dtype != dtype:
            array = array.astype(dtype)
    if array.size != count:
        raise V2Error(f"{where}.data has {array.size} elements but shape needs {count}")
    return array


def _flatten(data: list[Any], where: str) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _from_binary(chunk: memoryview, datatype: str, dtype: np.dtype, count: int, where: str) -> np.ndarray:
    if datatype == "BYTES":
        items: list[str] = []
        offset, end = 0, len(chunk)
        while offset < end:
            if offset + 4 > end:
                raise V2Error(f"{where}: truncated BYTES element length")
            (length,) = struct.unpack_from("<I", chunk, offset)
            offset += 4
            if offset + length > end:
                raise V2Error(f"{where}: BYTES element overruns binary_data_size")
            try:
                items.append(bytes(chunk[offset : offset + length]).decode("utf-8"))
            except UnicodeDecodeError:
                raise V2Error(f"{where}: BYTES element is not UTF-8 text (string tensors need text)") from None
            offset += length
        if len(items) != count:
            raise V2Error(f"{where} has {len(items)} BYTES elements but shape needs {count}")
        array = np.empty(count, dtype=object)
        array[:] = items
        return array
    if len(chunk) != count * dtype.itemsize:
        raise V2Error(
            f"{where}.parameters.binary_data_size is {len(chunk)} bytes but shape needs "
            f"{count * dtype.itemsize} bytes of {datatype}"
        )
    return np.frombuffer(chunk, dtype=dtype)


def _decode_inputs(model: OnnxModel, payload: dict[str, Any], binary: memoryview | None) -> dict[str, np.ndarray]:
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error("request must have a non-empty 'inputs' list")
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for index, tensor in enumerate(inputs):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict):
            raise V2Error(f"{where} must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        spec = model.inputs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise V2Error(f"{where}.name {name!r} is not an input of the model; inputs: {list(model.inputs)}")
        if name in feeds:
            raise V2Error(f"{where}: input {name!r} given twice")
        where = f"input {name!r}"
        datatype = tensor.get("datatype")
        if datatype != spec.datatype:
            if datatype not in _DATATYPES:
                raise V2Error(f"{where}: unknown datatype {datatype!r}")
            raise V2Error(f"{where}: datatype {datatype} does not match the model's {spec.datatype}")
        shape = _shape(tensor.get("shape"), where)
        if len(shape) != len(spec.shape) or any(m not in (-1, d) for m, d in zip(spec.shape, shape, strict=True)):
            raise V2Error(f"{where}: shape {list(shape)} does not fit the model's {list(spec.shape)} (-1: any)")
        count = math.prod(shape)
        dtype = _DATATYPES[datatype]
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise V2Error(f"{where}.parameters must be an object")
        binary_size = parameters.get("binary_data_size")
        if binary_size is not None:
            if "data" in tensor:
                raise V2Error(f"{where} has both data and parameters.binary_data_size")
            if binary is None:
                raise V2Error(f"{where} has binary_data_size but the request has no {_HEADER_LENGTH} header")
            if type(binary_size) is not int or binary_size < 0 or offset + binary_size > len(binary):
                raise V2Error(f"{where}.parameters.binary_data_size {binary_size!r} does not fit the body")
            array = _from_binary(binary[offset : offset + binary_size], datatype, dtype, count, where)
            offset += binary_size
        elif "data" in tensor:
            array = _from_json_data(tensor["data"], datatype, dtype, count, where)
        else:
            raise V2Error(f"{where} has no data")
        feeds[name] = array.reshape(shape)
    if binary is not None and offset != len(binary):
        raise V2Error(f"{len(binary) - offset} bytes of binary data after the JSON are not used by any input")
    missing = [name for name in model.inputs if name not in feeds]
    if missing:
        raise V2Error(f"missing model inputs: {missing}")
    return feeds


def _requested_outputs(model: OnnxModel, payload: dict[str, Any]) -> tuple[list[str], list[bool]]:
    """Names of the outputs to return and, for each, whether it goes back as binary data."""
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise V2Error("parameters must be an object")
    binary_default = parameters.get("binary_data_output") is True
    requested = payload.get("outputs")
    if requested is None:
        return model.output_names, [binary_default] * len(model.output_names)
    if not isinstance(requested, list):
        raise V2Error("outputs must be a list of objects with a name")
    names: list[str] = []
    binary: list[bool] = []
    for index, output in enumerate(requested):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in model.outputs:
            raise V2Error(
                f"outputs[{index}].name {name!r} is not an output of the model; outputs: {model.output_names}"
            )
        output_parameters = output.get("parameters") or {}
        if not isinstance(output_parameters, dict):
            raise V2Error(f"outputs[{index}].parameters must be an object")
        if output_parameters.get("classification"):
            raise V2Error(f"outputs[{index}]: the classification extension is not supported")
        names.append(name)
        binary.append(output_parameters.get("binary_data", binary_default) is True)
    if not names:
        raise V2Error("outputs is empty; omit it to get every output")
    return names, binary


# --- response encoding -------------------------------------------------------------------------


def _output_json_data(array: np.ndarray) -> list[Any]:
    flat = array.ravel()
    if array.dtype.kind == "O":  # onnxruntime returns str for tensor(string)
        return [item.decode("utf-8", "replace") if isinstance(item, bytes) else item for item in flat]
    return flat.tolist()


def _output_binary(array: np.ndarray, dtype: np.dtype) -> bytes:
    if dtype.kind == "O":
        parts = []
        for item in array.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def _infer_response(
    model: OnnxModel,
    payload: dict[str, Any],
    names: list[str],
    binary_flags: list[bool],
    results: list[np.ndarray],
) -> tuple[bytes, list[tuple[str, str]]]:
    """The response body and its headers."""
    outputs = []
    binary_parts = []
    for name, as_binary, array in zip(names, binary_flags, results, strict=True):
        datatype = model.outputs[name].datatype
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if as_binary:
            raw = _output_binary(array, _DATATYPES[datatype])
            output["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            output["data"] = _output_json_data(array)
        outputs.append(output)
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    request_id = payload.get("id")
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = outputs
    body = orjson.dumps(response)
    if not binary_parts:
        return body, [("Content-Type", _JSON), ("Content-Length", str(len(body)))]
    full = b"".join([body, *binary_parts])
    headers = [("Content-Type", _OCTET_STREAM), ("Content-Length", str(len(full))), (_HEADER_LENGTH, str(len(body)))]
    return full, headers


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
        _loaded_model(state)
        return _json_response({"ready": True})

    @v2.get("")
    def server_metadata() -> Response:
        settings = current_app.config
        return _json_response(
            {"name": "ai-app", "version": settings["APP_VERSION"], "extensions": ["binary_tensor_data"]}
        )

    @v2.get("/models/<name>")
    @v2.get("/models/<name>/versions/<version>")
    def model_metadata(name: str, version: str | None = None) -> Response:
        return _json_response(_find_model(state, name, version).metadata())

    @v2.get("/models/<name>/ready")
    @v2.get("/models/<name>/versions/<version>/ready")
    def model_ready(name: str, version: str | None = None) -> Response:
        model = _find_model(state, name, version)
        return _json_response({"name": model.name, "ready": True})

    return v2


def infer(
    state: ServiceState, environ: dict[str, Any], name: str, version: str | None
) -> tuple[bytes, list[tuple[str, str]]]:
    """Run one infer request; returns the 200 response's body and headers, raises V2Error for bad ones."""
    model = _find_model(state, name, version)
    _check_content_type(environ)
    payload, binary = _split_body(environ, _read_body(environ, state.max_request_bytes))
    feeds = _decode_inputs(model, payload, binary)
    names, binary_flags = _requested_outputs(model, payload)
    metrics = state.metrics
    metrics.inferences_in_progress.inc()
    started = time.perf_counter()
    try:
        results = model.run(feeds, names)
    except (InvalidArgument, RuntimeException, Fail) as exc:
        # The inputs passed every check against the model's metadata, so what is left is data the
        # graph cannot take (inconsistent batch sizes, out-of-range indices): the caller's to fix.
        metrics.inference_failures.inc()
        logger.warning("inference failed", extra={"error": str(exc), "model": model.name})
        raise V2Error(f"the model could not run on these inputs: {exc}") from None
    except Exception:
        metrics.inference_failures.inc()
        raise
    finally:
        metrics.inference_duration.observe(time.perf_counter() - started)
        metrics.inferences_in_progress.dec()
    return _infer_response(model, payload, names, binary_flags, results)


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
            headers += [("Content-Type", _JSON), ("Content-Length", str(len(body)))]
        start_response(_STATUS_LINES[status], headers)
        return [body]
