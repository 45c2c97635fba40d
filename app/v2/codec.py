"""Open Inference Protocol (V2) codec: request bodies to numpy feeds, results to response bodies.

Transport-neutral: the REST routes (app/v2/routes.py) use it, and so can another front end. Bodies
are parsed and built by hand (orjson + numpy) because this is the hot path: no schema library, no
per-request objects beyond the tensors themselves. Every rejection is a V2Error naming the field.
Spec: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
import orjson

from app.datatypes import BY_NAME
from app.model import OnnxModel

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
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


# --- request decoding ----------------------------------------------------------------------


def read_body(environ: dict[str, Any], max_bytes: int) -> bytes:
    """The request body, decompressed when the client used Content-Encoding (tritonclient can)."""
    length = environ.get("CONTENT_LENGTH")
    if length:
        # Read the sized body straight from the server's stream: Werkzeug's stream wrapping costs
        # more than the rest of a small request's decoding.
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
        # Chunked (or unsized) bodies: read one byte past the limit, so an oversized body is refused
        # (413, like a sized one) rather than silently cut at the limit and processed.
        body = environ["wsgi.input"].read(max_bytes + 1)
        if len(body) > max_bytes:
            raise V2Error(f"request body exceeds MAX_REQUEST_BYTES ({max_bytes} bytes)", 413)
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
    # A stream that stops before its end (gzip: no CRC32/size trailer) may be cut anywhere; bytes after
    # the end are not part of it. Either way the body is not what the client meant to send.
    if not decompressor.eof:
        raise V2Error(f"request body is truncated {encoding} data (the stream has no end)")
    if decompressor.unused_data:
        raise V2Error(f"request body has {len(decompressor.unused_data)} bytes after the end of its {encoding} data")
    return data


def split_body(environ: dict[str, Any], body: bytes) -> tuple[dict[str, Any], memoryview | None]:
    """Split an infer body into its JSON header and, with the binary extension, the binary part."""
    header_length = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
    binary = None
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise V2Error(f"{HEADER_LENGTH} header {header_length!r} is not an integer") from None
        if not 0 <= length <= len(body):
            raise V2Error(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
        binary = memoryview(body)[length:]
        body = body[:length]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise V2Error(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise V2Error("request body must be a JSON object with an 'inputs' list")
    return payload, binary


def check_content_type(environ: dict[str, Any]) -> None:
    # Clients that send JSON without a Content-Type (tritonclient does) are accepted.
    content_type = environ.get("CONTENT_TYPE")
    if not content_type or content_type == JSON:
        return
    mimetype = content_type.partition(";")[0].strip().lower()
    if mimetype not in (JSON, OCTET_STREAM):
        raise V2Error(f"unsupported Content-Type {mimetype!r}; send {JSON}", 415)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise V2Error(f"{where}.shape must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def check_int_range(array: np.ndarray, dtype: np.dtype, datatype: str, where: str) -> None:
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
            check_int_range(array, dtype, datatype, where)
        if array.dtype != dtype:
            with np.errstate(over="ignore"):  # overflow is detected just below
                array = array.astype(dtype)
        # JSON numbers are finite, so a non-finite value here is one too large for the datatype
        # (1e39 as FP32): refused rather than run as inf.
        if dtype.kind == "f" and not np.isfinite(array).all():
            raise V2Error(f"{where}.data has values outside the range of {datatype}")
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


def from_binary(
    chunk: memoryview, datatype: str, dtype: np.dtype, count: int, where: str, source: str | None = None
) -> np.ndarray:
    """The tensor in a binary chunk (V2 binary extension or gRPC raw contents), checked against the shape.

    `source` names the field that gave the chunk's size, for the error message.
    """
    if datatype == "BYTES":
        items: list[str] = []
        offset, end = 0, len(chunk)
        while offset < end:
            if offset + 4 > end:
                raise V2Error(f"{where}: truncated BYTES element length")
            (length,) = struct.unpack_from("<I", chunk, offset)
            offset += 4
            if offset + length > end:
                raise V2Error(f"{where}: BYTES element overruns {source or 'binary_data_size'}")
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
            f"{source or where + '.parameters.binary_data_size'} is {len(chunk)} bytes but shape needs "
            f"{count * dtype.itemsize} bytes of {datatype}"
        )
    return np.frombuffer(chunk, dtype=dtype)


def check_input(
    model: OnnxModel, feeds: dict[str, np.ndarray], where: str, name: Any, datatype: Any, shape: Any
) -> tuple[tuple[int, ...], int, np.dtype]:
    """Check one input tensor's name, datatype and shape against the model; its shape, size and dtype.

    `where` locates the tensor in the request (inputs[i]); `feeds` holds the inputs seen so far.
    """
    spec = model.inputs.get(name) if isinstance(name, str) else None
    if spec is None:
        raise V2Error(f"{where}.name {name!r} is not an input of the model; inputs: {list(model.inputs)}")
    if name in feeds:
        raise V2Error(f"{where}: input {name!r} given twice")
    where = f"input {name!r}"
    if datatype != spec.datatype:
        if not isinstance(datatype, str) or datatype not in BY_NAME:
            raise V2Error(f"{where}: unknown datatype {datatype!r}")
        raise V2Error(f"{where}: datatype {datatype} does not match the model's {spec.datatype}")
    shape = _shape(shape, where)
    if len(shape) != len(spec.shape) or any(m not in (-1, d) for m, d in zip(spec.shape, shape, strict=True)):
        raise V2Error(f"{where}: shape {list(shape)} does not fit the model's {list(spec.shape)} (-1: any)")
    return shape, math.prod(shape), BY_NAME[datatype].dtype


def check_all_inputs(model: OnnxModel, feeds: dict[str, np.ndarray]) -> None:
    missing = [name for name in model.inputs if name not in feeds]
    if missing:
        raise V2Error(f"missing model inputs: {missing}")


def decode_inputs(model: OnnxModel, payload: dict[str, Any], binary: memoryview | None) -> dict[str, np.ndarray]:
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
        datatype = tensor.get("datatype")
        shape, count, dtype = check_input(model, feeds, where, name, datatype, tensor.get("shape"))
        where = f"input {name!r}"
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise V2Error(f"{where}.parameters must be an object")
        binary_size = parameters.get("binary_data_size")
        if binary_size is not None:
            if "data" in tensor:
                raise V2Error(f"{where} has both data and parameters.binary_data_size")
            if binary is None:
                raise V2Error(f"{where} has binary_data_size but the request has no {HEADER_LENGTH} header")
            if type(binary_size) is not int or binary_size < 0 or offset + binary_size > len(binary):
                raise V2Error(f"{where}.parameters.binary_data_size {binary_size!r} does not fit the body")
            array = from_binary(binary[offset : offset + binary_size], datatype, dtype, count, where)
            offset += binary_size
        elif "data" in tensor:
            array = _from_json_data(tensor["data"], datatype, dtype, count, where)
        else:
            raise V2Error(f"{where} has no data")
        feeds[name] = array.reshape(shape)
    if binary is not None and offset != len(binary):
        raise V2Error(f"{len(binary) - offset} bytes of binary data after the JSON are not used by any input")
    check_all_inputs(model, feeds)
    return feeds


def check_request_id(payload: dict[str, Any]) -> None:
    """The spec's request id is a string, echoed in the response; anything else is refused."""
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2Error(f"id must be a string, got {type(request_id).__name__} {request_id!r}")


def check_output(model: OnnxModel, index: int, name: Any, classification: bool) -> None:
    """Check the `index`th requested output: a name of the model's outputs, no classification extension."""
    if not isinstance(name, str) or name not in model.outputs:
        raise V2Error(f"outputs[{index}].name {name!r} is not an output of the model; outputs: {model.output_names}")
    if classification:
        raise V2Error(f"outputs[{index}]: the classification extension is not supported")


def requested_outputs(model: OnnxModel, payload: dict[str, Any]) -> tuple[list[str], list[bool]]:
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
        output_parameters = output.get("parameters") or {}
        if not isinstance(output_parameters, dict):
            raise V2Error(f"outputs[{index}].parameters must be an object")
        check_output(model, index, name, bool(output_parameters.get("classification")))
        names.append(name)
        binary.append(output_parameters.get("binary_data", binary_default) is True)
    if not names:
        raise V2Error("outputs is empty; omit it to get every output")
    return names, binary


# --- response encoding ---------------------------------------------------------------------


# Longest JSON text of one element by numpy kind and item size (with its comma): the bound the
# response size check uses, so it never lets a response through that encodes larger.
_JSON_ELEMENT_BYTES = {("b", 1): 6, ("f", 2): 12, ("f", 4): 16, ("f", 8): 25}
_INT_JSON_ELEMENT_BYTES = 21


def _json_element_bytes(dtype: np.dtype) -> int:
    if dtype.kind in "iu":
        return min(_INT_JSON_ELEMENT_BYTES, len(str(np.iinfo(dtype).min)) + 1)
    return _JSON_ELEMENT_BYTES.get((dtype.kind, dtype.itemsize), 0)


def check_response_size(binary_flags: list[bool], results: list[np.ndarray], max_bytes: int) -> None:
    """Refuse (413) a response that would encode to more than `max_bytes`, before it is built.

    Together with MAX_REQUEST_BYTES this bounds what one request can make the worker hold.
    String outputs count their actual UTF-8 length.
    """
    total = 0
    for as_binary, array in zip(binary_flags, results, strict=True):
        if array.dtype.kind == "O":
            total += sum(len(item) if isinstance(item, bytes) else len(str(item).encode()) + 2 for item in array.flat)
            total += 4 * array.size if as_binary else 2 * array.size
        elif as_binary:
            total += array.nbytes
        else:
            total += array.size * _json_element_bytes(array.dtype)
    if total > max_bytes:
        raise V2Error(
            f"the response would take up to {total} bytes, over MAX_RESPONSE_BYTES ({max_bytes} bytes); "
            "send fewer rows per request or ask for binary outputs (binary_data_output)",
            413,
        )


def _output_json_data(array: np.ndarray) -> Any:
    flat = array.ravel()
    if array.dtype.kind == "O":  # onnxruntime returns str for tensor(string)
        return [item.decode("utf-8", "replace") if isinstance(item, bytes) else item for item in flat]
    # orjson writes numeric arrays itself (OPT_SERIALIZE_NUMPY): no Python object per element.
    return np.ascontiguousarray(flat)


def output_binary(array: np.ndarray, dtype: np.dtype) -> bytes:
    """The tensor as binary data (V2 binary extension, gRPC raw contents)."""
    if dtype.kind == "O":
        parts = []
        for item in array.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def encode_response(
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
            raw = output_binary(array, BY_NAME[datatype].dtype)
            output["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            output["data"] = _output_json_data(array)
        outputs.append(output)
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    request_id = payload.get("id")
    if request_id is not None:
        response["id"] = request_id  # a string: check_request_id ran before inference
    response["outputs"] = outputs
    body = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary_parts:
        return body, [("Content-Type", JSON), ("Content-Length", str(len(body)))]
    full = b"".join([body, *binary_parts])
    headers = [("Content-Type", OCTET_STREAM), ("Content-Length", str(len(full))), (HEADER_LENGTH, str(len(body)))]
    return full, headers


