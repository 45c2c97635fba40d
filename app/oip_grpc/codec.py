"""ModelInferRequest to numpy feeds and results to ModelInferResponse, with app.v2.codec's checks.

Every rejection is a V2Error naming the field, exactly as for REST; the servicer maps its status to
a gRPC code (400 INVALID_ARGUMENT, 404 NOT_FOUND, 413 RESOURCE_EXHAUSTED). Outputs always go back
as raw_output_contents, as Triton does: no per-element protobuf values, and every client
(tritonclient, KServe) reads them.
"""

from __future__ import annotations

import numpy as np

from app.model import OnnxModel
from app.oip_grpc.protocol import open_inference_grpc_pb2 as pb
from app.v2.codec import (
    V2Error,
    check_all_inputs,
    check_input,
    check_int_range,
    check_output,
    check_response_size,
    from_binary,
    output_binary,
)

# The InferTensorContents field that carries each datatype (FP16 has none: raw contents only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Wider wire types than the datatype: the values are range-checked before narrowing.
_NARROWED = frozenset({"INT8", "INT16", "UINT8", "UINT16"})


def _from_contents(
    contents: pb.InferTensorContents, datatype: str, dtype: np.dtype, count: int, where: str
) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise V2Error(f"{where}: datatype {datatype} has no typed contents field; send it in raw_input_contents")
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise V2Error(f"{where}: datatype {datatype} takes contents.{field}, but the request set contents.{others[0]}")
    values = getattr(contents, field)
    if len(values) != count:
        raise V2Error(f"{where}: contents.{field} has {len(values)} elements but shape needs {count}")
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        try:
            array[:] = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise V2Error(f"{where}: BYTES element is not UTF-8 text (string tensors need text)") from None
        return array
    if datatype in _NARROWED:
        wide = np.array(values, dtype=np.int64)
        check_int_range(wide, dtype, datatype, f"{where}.contents")
        return wide.astype(dtype)
    # float32 from Python floats: protobuf already holds them as float32 on the wire.
    return np.array(values, dtype=dtype)


def decode_inputs(model: OnnxModel, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """The request's tensors as feeds for the model; V2Error naming the field for anything that does not fit."""
    feeds = _decode_raw_exact(model, request)
    if feeds is not None:
        return feeds
    return _decode_checked(model, request)


def _decode_raw_exact(model: OnnxModel, request: pb.ModelInferRequest) -> dict[str, np.ndarray] | None:
    """The common request in few steps: every model input once, in raw contents of exactly its size.

    Under load each call runs with the caches cold from the gRPC stack and the network in between,
    so what a call touches is what it costs (docs/serving.md). This path accepts only what
    _decode_checked accepts and gives the same feeds (tests/app/grpc_codec_checks.py); anything else,
    valid or not, returns None and goes through _decode_checked, which also words the errors.
    """
    inputs = request.inputs
    raw = request.raw_input_contents
    specs = model.inputs
    if not inputs or len(inputs) != len(specs) or len(raw) != len(inputs):
        return None
    feeds: dict[str, np.ndarray] = {}
    for tensor, chunk in zip(inputs, raw, strict=True):
        name = tensor.name
        spec = specs.get(name)
        if spec is None or name in feeds or tensor.datatype != spec.datatype or spec.datatype == "BYTES":
            return None
        shape = tuple(tensor.shape)
        if len(shape) != len(spec.shape):
            return None
        count = 1
        for wanted, size in zip(spec.shape, shape, strict=True):
            if size < 0 or (size != wanted and wanted != -1):
                return None
            count *= size
        if len(chunk) != count * spec.dtype.itemsize or tensor.HasField("contents"):
            return None
        feeds[name] = np.frombuffer(chunk, dtype=spec.dtype).reshape(shape)
    return feeds


def _decode_checked(model: OnnxModel, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    inputs = request.inputs
    if not inputs:
        raise V2Error("request must have a non-empty inputs list")
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise V2Error(
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs; "
            "give one per input, in the order of inputs"
        )
    feeds: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(inputs):
        name = tensor.name
        shape, count, dtype = check_input(model, feeds, f"inputs[{index}]", name, tensor.datatype, list(tensor.shape))
        where = f"input {name!r}"
        if raw:
            if tensor.HasField("contents"):
                raise V2Error(f"{where} has contents, but the request uses raw_input_contents: use one or the other")
            source = f"raw_input_contents[{index}] ({where})"
            array = from_binary(memoryview(raw[index]), tensor.datatype, dtype, count, where, source)
        elif tensor.HasField("contents"):
            array = _from_contents(tensor.contents, tensor.datatype, dtype, count, where)
        else:
            raise V2Error(f"{where} has no data: set raw_input_contents (one entry per input) or its contents")
        feeds[name] = array.reshape(shape)
    check_all_inputs(model, feeds)
    return feeds


def requested_outputs(model: OnnxModel, request: pb.ModelInferRequest) -> list[str]:
    if not request.outputs:
        return model.output_names
    names = []
    for index, output in enumerate(request.outputs):
        name = output.name
        if name in model.outputs and not output.parameters:  # the common case, checked cheaply
            names.append(name)
            continue
        parameters = output.parameters
        classification = "classification" in parameters and _truthy(parameters["classification"])
        check_output(model, index, name, classification)
        names.append(name)
    return names


def _truthy(parameter: pb.InferParameter) -> bool:
    choice = parameter.WhichOneof("parameter_choice")
    return bool(getattr(parameter, choice)) if choice else False


def encode_response(
    model: OnnxModel, request_id: str, names: list[str], results: list[np.ndarray], max_bytes: int
) -> pb.ModelInferResponse:
    check_response_size([True] * len(results), results, max_bytes)
    specs = model.outputs
    # Filled in place (add, append): under load, with cold caches, cheaper than building the output
    # messages first and passing them to the constructor (docs/serving.md).
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request_id)
    outputs, contents = response.outputs, response.raw_output_contents
    for name, array in zip(names, results, strict=True):
        spec = specs[name]
        outputs.add(name=name, datatype=spec.datatype, shape=array.shape)
        contents.append(output_binary(array, spec.dtype))
    return response
