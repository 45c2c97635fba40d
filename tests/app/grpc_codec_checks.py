"""app/oip_grpc/codec.py: the common-case decode path accepts only what the checked path accepts and
gives the same feeds; the response is the same message as built field by field, with the same limits.

Both paths are exercised end to end by tests/app/test_grpc.py (bad requests over a real server); here
they are compared directly, on a model with several inputs of fixed and dynamic dimensions.

Run by tests/app/test_grpc_codec.py in a pytest process of its own: the codec imports our stubs, and
tritonclient's (imported by test_grpc.py) register the same `inference.*` names in the process's
default descriptor pool, which holds only one of them. The file name keeps pytest from collecting it
with the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.model import OnnxModel
from app.oip_grpc import codec
from app.oip_grpc.protocol import open_inference_grpc_pb2 as pb
from app.v2.codec import V2Error, check_response_size, output_binary
from tests.app.test_v2_datatypes import build_echo_model

# name: (datatype, ONNX element type, numpy dtype, model shape; None is a dynamic dimension)
INPUTS = {
    "features": ("FP32", "FLOAT", np.float32, [None, 4]),
    "ids": ("INT64", "INT64", np.int64, [None, 3]),
    "window": ("FP16", "FLOAT16", np.float16, [2, None]),
}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    from onnx import TensorProto, helper, save_model

    nodes, inputs, outputs = [], [], []
    for name, (_, onnx_type, _, shape) in INPUTS.items():
        dims = [f"{name}_{i}" if d is None else d for i, d in enumerate(shape)]
        element = getattr(TensorProto, onnx_type)
        inputs.append(helper.make_tensor_value_info(name, element, dims))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", element, dims))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
    path = tmp_path_factory.mktemp("codec") / "multi.onnx"
    graph = helper.make_graph(nodes, "multi", inputs, outputs)
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return OnnxModel.load(path, name="multi", version="1")


def arrays(rows: int, width: int = 5) -> dict[str, np.ndarray]:
    return {
        "features": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) / 3,
        "ids": np.arange(rows * 3, dtype=np.int64).reshape(rows, 3) - 2**40,
        "window": np.linspace(-1, 1, 2 * width).astype(np.float16).reshape(2, width),
    }


def request_for(tensors: dict[str, np.ndarray], order: list[str] | None = None) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="multi")
    for name in order or list(tensors):
        array = tensors[name]
        request.inputs.add(name=name, datatype=INPUTS[name][0], shape=list(array.shape))
        request.raw_input_contents.append(array.tobytes())
    return request


def assert_same_feeds(fast: dict[str, np.ndarray] | None, checked: dict[str, np.ndarray]) -> None:
    assert fast is not None
    assert list(fast) == list(checked)
    for name, array in checked.items():
        assert fast[name].dtype == array.dtype and fast[name].shape == array.shape
        assert fast[name].tobytes() == array.tobytes()


@pytest.mark.parametrize("rows", [0, 1, 64])
def test_the_common_case_gives_the_checked_paths_feeds(model: OnnxModel, rows: int) -> None:
    tensors = arrays(rows)
    request = request_for(tensors, order=["window", "features", "ids"])  # any order of inputs
    checked = codec._decode_checked(model, request)
    assert_same_feeds(codec._decode_raw_exact(model, request), checked)
    assert_same_feeds(codec.decode_inputs(model, request), checked)
    for name, array in tensors.items():
        assert checked[name].tolist() == array.tolist()


def test_typed_contents_and_string_tensors_take_the_checked_path(model: OnnxModel, tmp_path: Path) -> None:
    typed = pb.ModelInferRequest(model_name="multi")
    for name, array in arrays(2).items():
        tensor = typed.inputs.add(name=name, datatype=INPUTS[name][0], shape=list(array.shape))
        if name == "features":
            tensor.contents.fp32_contents.extend(array.ravel().tolist())
        elif name == "ids":
            tensor.contents.int64_contents.extend(array.ravel().tolist())
    typed.inputs.pop()  # FP16 has no typed contents field: leave "window" out, and so the request is invalid
    assert codec._decode_raw_exact(model, typed) is None
    with pytest.raises(V2Error, match=r"missing model inputs: \['window'\]"):
        codec.decode_inputs(model, typed)

    echo = OnnxModel.load(build_echo_model(tmp_path / "echo.onnx"), name="echo", version="1")
    request = pb.ModelInferRequest(model_name="echo")
    for spec in echo.inputs.values():
        request.inputs.add(name=spec.name, datatype=spec.datatype, shape=[1, 2])
        if spec.datatype == "BYTES":
            request.raw_input_contents.append(b"".join(len(t).to_bytes(4, "little") + t for t in (b"a", b"bc")))
        else:
            request.raw_input_contents.append(np.zeros((1, 2), spec.dtype).tobytes())
    assert codec._decode_raw_exact(echo, request) is None  # BYTES: length-prefixed elements
    assert codec.decode_inputs(echo, request)["texts"].tolist() == [["a", "bc"]]


def _invalid_requests() -> dict[str, pb.ModelInferRequest]:
    cases: dict[str, pb.ModelInferRequest] = {}

    def case(name: str) -> pb.ModelInferRequest:
        cases[name] = request_for(arrays(2))
        return cases[name]

    case("wrong datatype").inputs[0].datatype = "FP64"
    case("unknown datatype").inputs[0].datatype = "FLOAT"
    case("unknown input").inputs[1].name = "idz"
    case("input given twice").inputs[1].name = "features"
    case("wrong rank").inputs[0].shape.append(1)
    wrong_fixed = case("wrong fixed dimension").inputs[2]
    del wrong_fixed.shape[:]
    wrong_fixed.shape.extend([5, 2])  # 10 elements, the same count, but the model's first dimension is 2
    negatives = case("two negative dimensions").inputs[0]
    del negatives.shape[:]
    negatives.shape.extend([-2, -4])  # their product is the element count: only the sign check refuses
    case("one byte short").raw_input_contents[1] = arrays(2)["ids"].tobytes()[:-1]
    del case("no raw contents").raw_input_contents[:]
    case("raw contents for no input").raw_input_contents.append(b"\0" * 8)
    both = case("raw and typed contents")
    both.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    case("an input missing").inputs.pop()
    cases["no inputs"] = pb.ModelInferRequest(model_name="multi")
    return cases


@pytest.mark.parametrize("case", list(_invalid_requests()))
def test_what_the_checked_path_refuses_never_takes_the_common_case(model: OnnxModel, case: str) -> None:
    request = _invalid_requests()[case]
    assert codec._decode_raw_exact(model, request) is None
    with pytest.raises(V2Error):
        codec.decode_inputs(model, request)


def _field_by_field(
    model: OnnxModel, request_id: str, names: list[str], results: list[np.ndarray], max_bytes: int
) -> pb.ModelInferResponse:
    """The response as built before the in-place version: the reference it must equal."""
    check_response_size([True] * len(results), results, max_bytes)
    outputs, contents = [], []
    for name, array in zip(names, results, strict=True):
        spec = model.outputs[name]
        outputs.append(pb.ModelInferResponse.InferOutputTensor(name=name, datatype=spec.datatype, shape=array.shape))
        contents.append(output_binary(array, spec.dtype))
    return pb.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request_id, outputs=outputs, raw_output_contents=contents
    )


def test_the_response_is_the_message_built_field_by_field(model: OnnxModel, tmp_path: Path) -> None:
    tensors = arrays(3)
    names = ["ids_out", "features_out", "window_out"]
    results = [tensors["ids"], tensors["features"].astype(np.float64), tensors["window"][:, ::2]]  # converted; strided
    built = codec.encode_response(model, "req-1", names, results, 1 << 20)
    assert built == _field_by_field(model, "req-1", names, results, 1 << 20)
    assert np.frombuffer(built.raw_output_contents[1], np.float32).tolist() == tensors["features"].ravel().tolist()

    echo = OnnxModel.load(build_echo_model(tmp_path / "echo.onnx"), name="echo", version="1")
    texts = [np.array([["héllo", ""]], dtype=object)]
    built = codec.encode_response(echo, "req-2", ["texts_out"], texts, 1 << 20)
    assert built == _field_by_field(echo, "req-2", ["texts_out"], texts, 1 << 20)


@pytest.mark.parametrize("kind", ["numbers", "strings"])
def test_a_response_over_the_limit_is_refused_with_the_rest_message(
    model: OnnxModel, tmp_path: Path, kind: str
) -> None:
    if kind == "numbers":
        served, names, results = model, ["features_out"], [np.zeros((64, 4), np.float32)]  # 1024 bytes
    else:
        served = OnnxModel.load(build_echo_model(tmp_path / "echo.onnx"), name="echo", version="1")
        names, results = ["texts_out"], [np.array([["x" * 600, "y" * 600]], dtype=object)]  # 1208 bytes
    with pytest.raises(V2Error) as expected:
        check_response_size([True], results, 1000)
    with pytest.raises(V2Error) as caught:
        codec.encode_response(served, "req", names, results, 1000)
    assert (caught.value.status, caught.value.message) == (413, expected.value.message)
    assert codec.encode_response(served, "req", names, results, 2000).raw_output_contents  # under the limit: built
