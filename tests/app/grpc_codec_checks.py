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
    "grid": ("FP32", "FLOAT", np.float32, [None, None]),
}


def build_model(path: Path, names: list[str]) -> OnnxModel:
    """A graph passing each of INPUTS' `names` through Identity to `<name>_out`."""
    from onnx import TensorProto, helper, save_model

    nodes, inputs, outputs = [], [], []
    for name in names:
        _, onnx_type, _, shape = INPUTS[name]
        dims = [f"{name}_{i}" if d is None else d for i, d in enumerate(shape)]
        element = getattr(TensorProto, onnx_type)
        inputs.append(helper.make_tensor_value_info(name, element, dims))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", element, dims))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
    graph = helper.make_graph(nodes, path.stem, inputs, outputs)
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return OnnxModel.load(path, name="multi", version="1")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    return build_model(tmp_path_factory.mktemp("codec") / "multi.onnx", list(INPUTS))


def arrays(rows: int, width: int = 5) -> dict[str, np.ndarray]:
    return {
        "features": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) / 3,
        "ids": np.arange(rows * 3, dtype=np.int64).reshape(rows, 3) - 2**40,
        "window": np.linspace(-1, 1, 2 * width).astype(np.float16).reshape(2, width),
        "grid": np.arange(3 * (rows + 1), dtype=np.float32).reshape(3, rows + 1) - 7.5,
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
    request = request_for(tensors, order=["window", "grid", "features", "ids"])  # any order of inputs
    checked = codec._decode_checked(model, request)
    assert_same_feeds(codec._decode_raw_exact(model, request), checked)
    assert_same_feeds(codec.decode_inputs(model, request), checked)
    for name, array in tensors.items():
        assert checked[name].tolist() == array.tolist()


def test_typed_contents_take_the_checked_path(tmp_path: Path) -> None:
    typed_model = build_model(tmp_path / "typed.onnx", ["features", "ids"])  # FP16 has no typed field
    tensors = {name: array for name, array in arrays(2).items() if name in ("features", "ids")}
    request = pb.ModelInferRequest(model_name="multi")
    for name, array in tensors.items():
        tensor = request.inputs.add(name=name, datatype=INPUTS[name][0], shape=list(array.shape))
        field = "fp32_contents" if name == "features" else "int64_contents"
        getattr(tensor.contents, field).extend(array.ravel().tolist())
    assert codec._decode_raw_exact(typed_model, request) is None
    feeds = codec.decode_inputs(typed_model, request)
    assert {name: feeds[name].tolist() for name in feeds} == {name: a.tolist() for name, a in tensors.items()}


def test_string_tensors_take_the_checked_path_even_when_their_size_looks_right(tmp_path: Path) -> None:
    echo = OnnxModel.load(build_echo_model(tmp_path / "echo.onnx"), name="echo", version="1")
    # Two length-prefixed strings of 4 bytes: 16 bytes, what 2 elements of numpy's object dtype (8
    # bytes each, pointers) would take, so only the BYTES rule keeps them from np.frombuffer.
    texts = b"".join(len(t).to_bytes(4, "little") + t for t in (b"abcd", b"efgh"))
    assert len(texts) == 2 * np.dtype(object).itemsize
    request = pb.ModelInferRequest(model_name="echo")
    for spec in echo.inputs.values():
        request.inputs.add(name=spec.name, datatype=spec.datatype, shape=[1, 2])
        request.raw_input_contents.append(texts if spec.datatype == "BYTES" else np.zeros((1, 2), spec.dtype).tobytes())
    assert codec._decode_raw_exact(echo, request) is None
    assert codec.decode_inputs(echo, request)["texts"].tolist() == [["abcd", "efgh"]]


def test_a_model_without_inputs_still_refuses_an_empty_request(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper, save_model

    constant = helper.make_node("Constant", [], ["out"], value=numpy_helper.from_array(np.ones(2, np.float32)))
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])
    graph = helper.make_graph([constant], "constant", [], [output])
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "constant.onnx")
    constant_model = OnnxModel.load(tmp_path / "constant.onnx", name="constant", version="1")
    request = pb.ModelInferRequest(model_name="constant")
    assert codec._decode_raw_exact(constant_model, request) is None
    with pytest.raises(V2Error, match="request must have a non-empty inputs list"):
        codec.decode_inputs(constant_model, request)


def _invalid_requests() -> dict[str, pb.ModelInferRequest]:
    cases: dict[str, pb.ModelInferRequest] = {}

    def case(name: str) -> pb.ModelInferRequest:
        cases[name] = request_for(arrays(2))
        return cases[name]

    case("wrong datatype").inputs[0].datatype = "FP64"
    case("unknown datatype").inputs[0].datatype = "FLOAT"
    case("unknown input").inputs[1].name = "idz"
    twice = case("input given twice")  # a second, well-formed "features" in place of "ids"
    twice.inputs[1].CopyFrom(twice.inputs[0])
    twice.raw_input_contents[1] = twice.raw_input_contents[0]
    case("wrong rank").inputs[0].shape.append(1)
    wrong_fixed = case("wrong fixed dimension").inputs[2]
    del wrong_fixed.shape[:]
    wrong_fixed.shape.extend([5, 2])  # 10 elements, the same count, but the model's first dimension is 2
    negatives = case("two negative dimensions").inputs[3]  # "grid": both dimensions dynamic
    del negatives.shape[:]
    negatives.shape.extend([-3, -3])  # their product is the element count (3 x 3): only the sign refuses
    case("one byte short").raw_input_contents[1] = arrays(2)["ids"].tobytes()[:-1]
    del case("no raw contents").raw_input_contents[:]
    case("raw contents for no input").raw_input_contents.append(b"\0" * 8)
    both = case("raw and typed contents")
    both.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    missing = case("an input missing")  # its raw contents gone too: only the count of inputs differs
    missing.inputs.pop()
    missing.raw_input_contents.pop()
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
        names, results = ["texts_out"], [np.array([["x" * 600, "y" * 600]], dtype=object)]  # 1212 bytes
    with pytest.raises(V2Error) as expected:
        check_response_size([True], results, 1000)
    with pytest.raises(V2Error) as caught:
        codec.encode_response(served, "req", names, results, 1000)
    assert (caught.value.status, caught.value.message) == (413, expected.value.message)
    assert codec.encode_response(served, "req", names, results, 2000).raw_output_contents  # under the limit: built
