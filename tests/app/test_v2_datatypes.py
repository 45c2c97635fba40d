"""Every V2 datatype family through JSON and the binary extension, on an ONNX model that echoes its inputs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.server import create_app

# input name -> (V2 datatype, ONNX element type name, numpy dtype)
TENSORS = {
    "doubles": ("FP64", "DOUBLE", np.float64),
    "halves": ("FP16", "FLOAT16", np.float16),
    "longs": ("INT64", "INT64", np.int64),
    "ints": ("INT32", "INT32", np.int32),
    "bytes_u8": ("UINT8", "UINT8", np.uint8),
    "flags": ("BOOL", "BOOL", np.bool_),
    "texts": ("BYTES", "STRING", object),
}


def build_echo_model(path: Path) -> Path:
    """A graph with one input per datatype, each passed through Identity to `<name>_out`."""
    from onnx import TensorProto, helper, save_model

    nodes, inputs, outputs = [], [], []
    for name, (_, onnx_type, _) in TENSORS.items():
        element = getattr(TensorProto, onnx_type)
        inputs.append(helper.make_tensor_value_info(name, element, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", element, ["batch", 2]))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


VALUES = {
    "doubles": [[0.1, -2.5], [1e300, 3.0]],
    "halves": [[0.5, 1.5], [-2.0, 4.0]],
    "longs": [[2**62, -(2**62)], [0, 7]],
    "ints": [[2**31 - 1, -(2**31)], [1, 2]],
    "bytes_u8": [[0, 255], [1, 2]],
    "flags": [[True, False], [False, True]],
    "texts": [["héllo", ""], ["b", "ünïcode ✓"]],
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    path = build_echo_model(tmp_path_factory.mktemp("echo") / "echo.onnx")
    return create_app(Settings(MODEL_PATH=str(path), MODEL_NAME="echo", MODEL_VERSION="3")).test_client()


def json_inputs(overrides: dict[str, object] | None = None) -> list[dict[str, object]]:
    inputs = []
    for name, (datatype, _, _) in TENSORS.items():
        inputs.append({"name": name, "datatype": datatype, "shape": [2, 2], "data": VALUES[name]})
    for tensor in inputs:
        tensor.update((overrides or {}).get(tensor["name"], {}))
    return inputs


def test_metadata_lists_every_datatype(client: FlaskClient) -> None:
    metadata = client.get("/v2/models/echo/versions/3").json
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        (name, datatype, [-1, 2]) for name, (datatype, _, _) in TENSORS.items()
    ]


def test_json_round_trip_of_every_datatype(client: FlaskClient) -> None:
    response = client.post("/v2/models/echo/infer", json={"inputs": json_inputs()})
    assert response.status_code == 200, response.json
    outputs = {o["name"]: o for o in response.json["outputs"]}
    for name, (datatype, _, _) in TENSORS.items():
        out = outputs[f"{name}_out"]
        assert (out["datatype"], out["shape"]) == (datatype, [2, 2])
        expected = [v for row in VALUES[name] for v in row]
        assert out["data"] == expected, name


def test_binary_round_trip_of_every_datatype(client: FlaskClient) -> None:
    header_inputs, chunks = [], []
    for name, (datatype, _, dtype) in TENSORS.items():
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for row in VALUES[name] for s in row)
        else:
            raw = np.array(VALUES[name], dtype=dtype).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        header_inputs.append(
            {"name": name, "datatype": datatype, "shape": [2, 2], "parameters": {"binary_data_size": len(raw)}}
        )
        chunks.append(raw)
    header = json.dumps({"inputs": header_inputs, "parameters": {"binary_data_output": True}}).encode()
    response = client.post(
        "/v2/models/echo/infer",
        data=header + b"".join(chunks),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.data[:300]
    length = int(response.headers["Inference-Header-Content-Length"])
    outputs = json.loads(response.data[:length])["outputs"]
    offset = length
    for output, raw in zip(outputs, chunks, strict=True):
        size = output["parameters"]["binary_data_size"]
        # Outputs echo inputs, so each output's bytes equal the input's bytes, in the same encoding.
        assert response.data[offset : offset + size] == raw, output["name"]
        offset += size
    assert offset == len(response.data)


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("ints", [[2**31, 0], [0, 0]], "outside the range of INT32"),
        ("bytes_u8", [[-1, 0], [0, 0]], "outside the range of UINT8"),
        ("longs", [[2**64, 0], [0, 0]], "must hold integers"),
        ("longs", [[1.5, 0], [0, 0]], "must hold integers"),
        ("flags", [[1, 0], [0, 1]], "true/false"),
        ("texts", [[1, 2], [3, 4]], "must hold strings"),
        ("doubles", [[True, "x"], [0, 0]], "must hold numbers"),
    ],
)
def test_json_values_that_do_not_fit_the_datatype(client: FlaskClient, name: str, data: object, fragment: str) -> None:
    response = client.post("/v2/models/echo/infer", json={"inputs": json_inputs({name: {"data": data}})})
    assert response.status_code == 400
    assert fragment in response.json["error"]


def test_missing_input_is_named(client: FlaskClient) -> None:
    inputs = [t for t in json_inputs() if t["name"] != "texts"]
    response = client.post("/v2/models/echo/infer", json={"inputs": inputs})
    assert response.status_code == 400
    assert "missing model inputs: ['texts']" in response.json["error"]


def test_inputs_the_graph_cannot_combine_get_a_400(tmp_path: Path) -> None:
    """Each input fits its declared shape, but Add cannot broadcast [2] with [3]: onnxruntime fails."""
    from onnx import TensorProto, helper, save_model

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "adder",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n"]) for n in ("a", "b")],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n"])],
    )
    path = tmp_path / "adder.onnx"
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    client = create_app(Settings(MODEL_PATH=str(path), MODEL_NAME="adder")).test_client()
    body = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2]},
            {"name": "b", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
        ]
    }
    response = client.post("/v2/models/adder/infer", json=body)
    assert response.status_code == 400
    assert "the model could not run on these inputs" in response.json["error"]
    body["inputs"][1] = {"name": "b", "datatype": "FP32", "shape": [2], "data": [10, 20]}
    assert client.post("/v2/models/adder/infer", json=body).json["outputs"][0]["data"] == [11.0, 22.0]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (struct.pack("<I", 5) + b"ab", "overruns binary_data_size"),
        (b"\x01\x00", "truncated BYTES element length"),
        (struct.pack("<I", 2) + b"\xff\xfe", "not UTF-8"),
        (struct.pack("<I", 1) + b"a", "has 1 BYTES elements but shape needs 4"),
    ],
)
def test_malformed_binary_bytes(client: FlaskClient, raw: bytes, fragment: str) -> None:
    inputs = json_inputs({"texts": {"data": None}})
    for tensor in inputs:
        if tensor["name"] == "texts":
            del tensor["data"]
            tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": inputs}).encode()
    response = client.post(
        "/v2/models/echo/infer", data=header + raw, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status_code == 400
    assert fragment in response.json["error"]
