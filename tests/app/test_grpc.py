"""The Open Inference Protocol over gRPC: `python -m app serve` with GRPC_PORT, called by tritonclient.

Clients here use tritonclient's gRPC client and its compiled messages (Triton's superset of the
protocol, package `inference`): an independent implementation of the wire format. The server's own
stubs are never imported into this process (their messages have the same names).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from app.metrics import FLUSH_SECONDS
from app.training import TrainedModel
from tests.app.test_serve import Server, build_slow_model, free_port, scrape, server_env, start_server
from tests.app.test_v2_datatypes import TENSORS, VALUES, build_echo_model

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
SERVICE = "inference.GRPCInferenceService"
MAX_REQUEST_BYTES = 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass
class GrpcServer:
    server: Server
    target: str

    def stub(self, channel: grpc.Channel) -> pb_grpc.GRPCInferenceServiceStub:
        return pb_grpc.GRPCInferenceServiceStub(channel)


def start_grpc_server(model_path: Path, tmp_dir: Path, **extra: str) -> GrpcServer:
    grpc_port = free_port()
    env = server_env(model_path, tmp_dir, GRPC_PORT=str(grpc_port), **extra)
    server = start_server(env, tmp_dir)
    target = f"127.0.0.1:{grpc_port}"
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while True:
            try:
                if stub.ServerReady(pb.ServerReadyRequest(), timeout=2).ready:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline or server.process.poll() is not None:
                server.stop()
                raise AssertionError(f"gRPC not ready within 60 s:\n{server.log_path.read_text()}")
            time.sleep(0.1)
    return GrpcServer(server, target)


@pytest.fixture(scope="module")
def iris(trained_models: dict[str, TrainedModel], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    model = trained_models["iris-logreg"]
    tmp_dir = tmp_path_factory.mktemp("grpc")
    running = start_grpc_server(
        model.path,
        tmp_dir,
        MODEL_SHA256=model.sha256,
        WEB_CONCURRENCY="1",
        GRPC_WORKERS="2",
        MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
        MAX_RESPONSE_BYTES=str(MAX_RESPONSE_BYTES),
    )
    yield running
    assert running.server.stop() == 0


@pytest.fixture(scope="module")
def client(iris: GrpcServer) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(iris.target) as grpc_client:
        yield grpc_client


@pytest.fixture(scope="module")
def channel(iris: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(iris.target) as grpc_channel:
        yield grpc_channel


def expected_outputs(model: TrainedModel, rows: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": rows}), strict=True))


# --- tritonclient, unchanged ---------------------------------------------------------------------


def test_tritonclient_reads_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "ai-app"
    metadata = client.get_model_metadata("iris", as_json=True)
    assert metadata["name"] == "iris"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {"label": "INT64", "probabilities": "FP32"}


def test_tritonclient_infers_fp32_in_and_int64_out_with_raw_contents(
    client: triton.InferenceServerClient, trained_models: dict[str, TrainedModel]
) -> None:
    infer_input = triton.InferInput("input", list(ROWS.shape), "FP32")
    infer_input.set_data_from_numpy(ROWS)  # raw_input_contents
    result = client.infer("iris", [infer_input], request_id="rows-2", headers={"x-request-id": "triton-1"})
    expected = expected_outputs(trained_models["iris-logreg"], ROWS)
    label = result.as_numpy("label")
    assert label.dtype == np.int64 and label.tolist() == expected["label"].tolist() == [0, 2]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-6)
    response = result.get_response()
    assert response.id == "rows-2"
    assert (response.model_name, response.model_version) == ("iris", "1")
    assert len(response.raw_output_contents) == 2


def test_tritonclient_requested_outputs_and_version(client: triton.InferenceServerClient) -> None:
    infer_input = triton.InferInput("input", [1, 4], "FP32")
    infer_input.set_data_from_numpy(ROWS[:1])
    result = client.infer(
        "iris", [infer_input], model_version="1", outputs=[triton.InferRequestedOutput("probabilities")]
    )
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    assert result.as_numpy("label") is None
    assert result.as_numpy("probabilities").shape == (1, 3)


def test_tritonclient_errors_carry_the_status_and_message(client: triton.InferenceServerClient) -> None:
    infer_input = triton.InferInput("input", [1, 4], "FP32")
    infer_input.set_data_from_numpy(ROWS[:1])
    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", [infer_input])
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert "model 'nope' not found; this server serves 'iris'" in caught.value.message()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    tmp_dir = tmp_path_factory.mktemp("grpc-echo")
    path = build_echo_model(tmp_dir / "echo.onnx")
    running = start_grpc_server(path, tmp_dir, MODEL_NAME="echo", MODEL_VERSION="3", WEB_CONCURRENCY="1")
    yield running
    assert running.server.stop() == 0


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    # KServe's client pins protobuf<7 and the project runs protobuf 7: it has a venv of its own, made by
    # scripts/bootstrap (devenv/kserve_client.py), and runs as a subprocess.
    from devenv.kserve_client import kserve_python as installed

    return installed()


def test_kserve_grpc_client_works_unchanged(iris: GrpcServer, kserve_python: Path, trained_models: dict[str,
                                            TrainedModel]) -> None:
    completed = subprocess.run(
        [str(kserve_python), str(Path(__file__).with_name("kserve_grpc_client.py")), iris.target, "iris"],
        capture_output=True, text=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert found["server_live"] is True and found["server_ready"] is True and found["model_ready"] is True
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    expected = expected_outputs(trained_models["iris-logreg"], rows)
    for raw in (True, False):  # raw_input_contents, then fp32_contents
        answer = found[f"infer_raw_{raw}"]
        assert answer["id"] == f"kserve-{raw}" and answer["model_name"] == "iris"
        assert answer["datatypes"] == {"probabilities": "FP32", "label": "INT64"}
        assert answer["outputs"]["label"] == expected["label"].tolist()
        np.testing.assert_allclose(answer["outputs"]["probabilities"], expected["probabilities"], rtol=1e-6)
    assert found["bad_datatype"] == {
        "code": "INVALID_ARGUMENT", "details": "input 'input': datatype INT64 does not match the model's FP32"
    }
    assert found["unknown_model"] == {
        "code": "NOT_FOUND", "details": "model 'nope' not found; this server serves 'iris'"
    }


def test_tritonclient_round_trips_every_datatype(echo: GrpcServer) -> None:
    arrays = {name: np.array(VALUES[name], dtype=TENSORS[name][2]) for name in TENSORS}
    arrays["texts"] = np.array([[v.encode() for v in row] for row in VALUES["texts"]], dtype=object)
    inputs = []
    for name, (datatype, _, _) in TENSORS.items():
        infer_input = triton.InferInput(name, [2, 2], datatype)
        infer_input.set_data_from_numpy(arrays[name])
        inputs.append(infer_input)
    with triton.InferenceServerClient(echo.target) as echo_client:
        result = echo_client.infer("echo", inputs, model_version="3")
    for name, (datatype, _, _) in TENSORS.items():
        output = result.as_numpy(f"{name}_out")
        assert output.shape == (2, 2), name
        if datatype == "BYTES":
            assert output.tolist() == arrays[name].tolist()
        else:
            assert output.dtype == arrays[name].dtype, name
            np.testing.assert_array_equal(output, arrays[name])


def test_typed_contents_are_accepted_too(echo: GrpcServer) -> None:
    request = pb.ModelInferRequest(model_name="echo")
    contents = {
        "doubles": {"fp64_contents": [0.5, 1, 2, 3]},
        "longs": {"int64_contents": [2**62, -1, 0, 7]},
        "ints": {"int_contents": [1, -2, 3, -4]},
        "bytes_u8": {"uint_contents": [0, 255, 1, 2]},
        "flags": {"bool_contents": [True, False, True, False]},
        "texts": {"bytes_contents": [b"a", "é".encode(), b"", b"d"]},
    }
    for name, fields in contents.items():
        request.inputs.add(name=name, datatype=TENSORS[name][0], shape=[2, 2], contents=fields)
    # FP16 has no typed field: rejected with the remedy.
    request.inputs.add(name="halves", datatype="FP16", shape=[2, 2], contents={"fp32_contents": [1, 2, 3, 4]})
    with grpc.insecure_channel(echo.target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == (
            "input 'halves': datatype FP16 has no typed contents field; send it in raw_input_contents"
        )
        del request.inputs[-1]
        request.inputs.add(name="halves", datatype="FP16", shape=[2, 2])
        # Mixed: typed contents for some inputs and raw for another is what the protocol forbids.
        request.raw_input_contents.append(np.ones(4, np.float16).tobytes())
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents has 1 entries for 7 inputs" in caught.value.details()
        # A narrow integer type gets its values range-checked, not wrapped.
        del request.raw_input_contents[:]
        del request.inputs[-1]
        request.inputs.add(name="halves", datatype="FP16", shape=[2, 2])
        only_typed = pb.ModelInferRequest(model_name="echo")
        only_typed.CopyFrom(request)
        del only_typed.inputs[-1]
        only_typed.inputs[3].contents.uint_contents[1] = 256
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(only_typed, timeout=10)
        assert caught.value.details() == "input 'bytes_u8'.contents.data has values outside the range of UINT8"


# --- bad input: the right status and a message that says what is wrong ---------------------------


def iris_request(**overrides: object) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(ROWS[:1].tobytes())
    for key, value in overrides.items():
        if key == "tensor":
            request.inputs[0].MergeFrom(pb.ModelInferRequest.InferInputTensor(**value))  # type: ignore[arg-type]
            if "shape" in value:  # type: ignore[operator]
                del request.inputs[0].shape[:]
                request.inputs[0].shape.extend(value["shape"])  # type: ignore[index]
            if "datatype" in value:  # type: ignore[operator]
                request.inputs[0].datatype = value["datatype"]  # type: ignore[index]
        elif key == "raw":
            del request.raw_input_contents[:]
            request.raw_input_contents.extend(value)  # type: ignore[arg-type]
        else:
            setattr(request, key, value) if not isinstance(value, list) else getattr(request, key).extend(value)
    return request


BAD_REQUESTS = {
    "wrong datatype": (
        iris_request(tensor={"datatype": "FP64"}, raw=[np.zeros(4, np.float64).tobytes()]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input': datatype FP64 does not match the model's FP32",
    ),
    "unknown datatype": (
        iris_request(tensor={"datatype": "FLOAT"}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input': unknown datatype 'FLOAT'",
    ),
    "wrong shape": (
        iris_request(tensor={"shape": [1, 3]}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input': shape [1, 3] does not fit the model's [-1, 4] (-1: any)",
    ),
    "negative dimension": (
        iris_request(tensor={"shape": [-1, 4]}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input'.shape must be a list of non-negative integers, got [-1, 4]",
    ),
    "content size mismatch": (
        iris_request(raw=[ROWS[:1].tobytes()[:12]]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents[0] (input 'input') is 12 bytes but shape needs 16 bytes of FP32",
    ),
    "missing raw contents": (
        iris_request(raw=[]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input' has no data: set raw_input_contents (one entry per input) or its contents",
    ),
    "raw contents for no input": (
        iris_request(raw=[ROWS[:1].tobytes(), b"\0" * 16]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents has 2 entries for 1 inputs; give one per input, in the order of inputs",
    ),
    "typed contents of another datatype": (
        iris_request(raw=[], tensor={"contents": {"int64_contents": [1, 2, 3, 4]}}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input': datatype FP32 takes contents.fp32_contents, but the request set contents.int64_contents",
    ),
    "typed contents too short": (
        iris_request(raw=[], tensor={"contents": {"fp32_contents": [1, 2, 3]}}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'input': contents.fp32_contents has 3 elements but shape needs 4",
    ),
    "unknown input": (
        iris_request(tensor={"name": "features"}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "inputs[0].name 'features' is not an input of the model; inputs: ['input']",
    ),
    "no inputs": (
        pb.ModelInferRequest(model_name="iris"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request must have a non-empty inputs list",
    ),
    "unknown output": (
        iris_request(outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="score")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "outputs[0].name 'score' is not an output of the model; outputs: ['label', 'probabilities']",
    ),
    "unknown model": (
        iris_request(model_name="nope"),
        grpc.StatusCode.NOT_FOUND,
        "model 'nope' not found; this server serves 'iris'",
    ),
    "unknown version": (
        iris_request(model_version="9"),
        grpc.StatusCode.NOT_FOUND,
        "model 'iris' version '9' not found; available versions: ['1']",
    ),
    "response over MAX_RESPONSE_BYTES": (
        iris_request(tensor={"shape": [4000, 4]}, raw=[np.ones((4000, 4), np.float32).tobytes()]),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the response would take up to 80000 bytes, over MAX_RESPONSE_BYTES (65536 bytes); "
        "send fewer rows per request or ask for binary outputs (binary_data_output)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_infer_requests_get_the_right_status_and_message(
    case: str, channel: grpc.Channel, iris: GrpcServer
) -> None:
    request, code, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as caught:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert (caught.value.code(), caught.value.details()) == (code, message)


def test_an_oversized_message_is_refused_by_grpc_before_the_service(channel: grpc.Channel) -> None:
    rows = MAX_REQUEST_BYTES // 16 + 1024
    request = iris_request(tensor={"shape": [rows, 4]}, raw=[np.ones((rows, 4), np.float32).tobytes()])
    with pytest.raises(grpc.RpcError) as caught:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"vs. {MAX_REQUEST_BYTES})" in caught.value.details()  # "Received message larger than max (n vs. m)"


def test_metadata_calls_for_unknown_models_are_not_found(channel: grpc.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    for call, request in (
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="nope")),
        (stub.ModelReady, pb.ModelReadyRequest(name="iris", version="2")),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Methods of Triton's superset that the protocol does not have.
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelStatistics(pb.ModelStatisticsRequest(name="iris"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_bytes_that_are_not_a_request_message_are_invalid_argument(channel: grpc.Channel) -> None:
    raw_call = channel.unary_unary(f"/{SERVICE}/ModelInfer")
    with pytest.raises(grpc.RpcError) as caught:
        raw_call(b"\xff\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("the request is not a valid inference.ModelInferRequest message: ")


def test_no_client_error_was_an_internal_error(iris: GrpcServer) -> None:
    # Access lines are written in batches every FLUSH_SECONDS (app/logs.py): let the last ones land.
    time.sleep(3 * FLUSH_SECONDS)
    entries = iris.server.log_entries()
    assert [e for e in entries if e.get("status") == "INVALID_ARGUMENT"]
    assert not [e for e in entries if e.get("message") == "unhandled error"]
    assert not [e for e in entries if e.get("status") in ("INTERNAL", "UNKNOWN")]


# --- stalled clients --------------------------------------------------------------------------------


def test_calls_stalled_by_their_clients_do_not_hold_up_fresh_ones(iris: GrpcServer) -> None:
    """Clients that send a call's headers and then no message (48 calls over 12 connections, so both
    worker processes hold more than their call threads) must not stop fresh calls; the stalled ones
    are answered when their message finally comes."""
    release = threading.Event()

    def held_back_request() -> Iterator[pb.ModelInferRequest]:
        # A unary method called as client-streaming: headers go out now, the message when released.
        release.wait(120)
        yield iris_request()

    # Its own subchannel pool per channel: else grpcio shares one connection among channels to a target.
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(iris.target, options=own_connection) for _ in range(12)]
    try:
        stalled = []
        for stalled_channel in channels:
            call = stalled_channel.stream_unary(
                f"/{SERVICE}/ModelInfer",
                request_serializer=pb.ModelInferRequest.SerializeToString,
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            stalled += [call.future(held_back_request(), timeout=120) for _ in range(4)]
        time.sleep(1)  # the stalled calls have reached the workers
        assert not [f for f in stalled if f.done()], "a stalled call ended before its message was sent"
        for _ in range(8):  # fresh connections, so both worker processes answer some
            with grpc.insecure_channel(iris.target, options=own_connection) as fresh:
                response = pb_grpc.GRPCInferenceServiceStub(fresh).ModelInfer(iris_request(), timeout=30)
            assert response.model_name == "iris"
        release.set()
        for future in stalled:
            assert future.result(timeout=60).model_name == "iris"
    finally:
        release.set()
        for stalled_channel in channels:
            stalled_channel.close()


# --- health, request ids, metrics ----------------------------------------------------------------


def test_health_service_answers_for_the_server_and_the_inference_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="other.Service"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_request_ids_come_back_in_trailers_and_logs(iris: GrpcServer, channel: grpc.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    _, call = stub.ModelInfer.with_call(iris_request(), metadata=(("x-request-id", "grpc-log-1"),), timeout=10)
    assert dict(call.trailing_metadata())["x-request-id"] == "grpc-log-1"
    # A malformed id is replaced, and failures carry the id too.
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(iris_request(model_name="nope"), metadata=(("x-request-id", "not valid!"),), timeout=10)
    generated = dict(caught.value.trailing_metadata())["x-request-id"]
    assert generated != "not valid!" and len(generated) == 32
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        by_id = {e.get("request_id"): e for e in iris.server.log_entries()}
        if "grpc-log-1" in by_id and generated in by_id:
            break
        time.sleep(0.1)
    assert by_id["grpc-log-1"]["route"] == f"/{SERVICE}/ModelInfer"
    assert by_id["grpc-log-1"]["status"] == "OK"
    assert by_id[generated]["status"] == "NOT_FOUND"
    assert by_id[generated]["error"] == "model 'nope' not found; this server serves 'iris'"


def test_grpc_calls_are_counted_with_the_rest_metrics_under_protocol_grpc(
    iris: GrpcServer, channel: grpc.Channel
) -> None:
    def count(status: str) -> float:
        labels = {
            "protocol": "grpc",
            "method": "POST",
            "route": f"/{SERVICE}/ModelInfer",
            "status": status,
            "model": "iris",
            "version": "1",
        }
        return scrape(iris.server).get(("ai_app_http_requests_total", frozenset(labels.items())), 0.0)

    ok_before, bad_before = count("OK"), count("INVALID_ARGUMENT")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    for _ in range(5):
        stub.ModelInfer(iris_request(), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(iris_request(raw=[]), timeout=10)
    # Both gRPC workers write to the multiprocess registry the REST /metrics endpoint reads, every
    # FLUSH_SECONDS: wait for the last batch to land.
    deadline = time.monotonic() + 10
    while (count("OK") - ok_before, count("INVALID_ARGUMENT") - bad_before) != (5, 1) and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS)
    assert count("OK") - ok_before == 5
    assert count("INVALID_ARGUMENT") - bad_before == 1


def test_the_model_is_loaded_once_and_shared_with_the_grpc_workers(iris: GrpcServer) -> None:
    entries = iris.server.log_entries()
    loads = [e for e in entries if e["message"] == "model loaded"]
    assert len(loads) == 1 and loads[0]["pid"] == iris.server.process.pid
    started = [e for e in entries if e["message"] == "gRPC worker started"]
    assert len(started) == 2
    listening = {e["pid"] for e in entries if e["message"] == "gRPC server listening"}
    assert listening == {e["worker_pid"] for e in started}


# --- process lifecycle -----------------------------------------------------------------------------


def test_a_grpc_worker_that_dies_is_replaced(trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    running = start_grpc_server(trained_models["iris-logreg"].path, tmp_path, WEB_CONCURRENCY="1")
    try:
        (first,) = [e["worker_pid"] for e in running.server.log_entries() if e["message"] == "gRPC worker started"]
        time.sleep(6)  # past the crash-loop window: a worker that dies later is replaced
        os.kill(int(first), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = [e for e in running.server.log_entries() if e["message"] == "gRPC worker started"]
            if len(started) == 2:
                break
            time.sleep(0.1)
        assert len(started) == 2
        with grpc.insecure_channel(running.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            deadline = time.monotonic() + 30
            while True:
                try:
                    stub.ModelInfer(iris_request(), timeout=5)
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
    finally:
        assert running.server.stop() == 0


def test_a_taken_grpc_port_stops_the_service_with_an_error(
    trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = server_env(trained_models["iris-logreg"].path, tmp_path, GRPC_PORT=str(port), WEB_CONCURRENCY="1")
        import subprocess
        import sys

        from tests.app.test_serve import REPO

        result = subprocess.run(
            [sys.executable, "-m", "app", "serve"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 1
    assert f"is GRPC_PORT {port} free?" in result.stderr


def slow_request(iterations: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="slow")
    request.inputs.add(name="x", datatype="FP32", shape=[64, 256])
    request.inputs.add(name="iterations", datatype="INT64", shape=[1])
    request.raw_input_contents.extend([np.ones((64, 256), np.float32).tobytes(), np.int64(iterations).tobytes()])
    return request


def test_sigterm_lets_in_flight_grpc_calls_finish(tmp_path: Path) -> None:
    model = build_slow_model(tmp_path / "slow.onnx")
    running = start_grpc_server(model, tmp_path, MODEL_NAME="slow", GRACEFUL_TIMEOUT="120", WEB_CONCURRENCY="1")
    try:
        result: dict[str, object] = {}
        with grpc.insecure_channel(running.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)

            def slow_call() -> None:
                try:
                    result["response"] = stub.ModelInfer(slow_request(10000), timeout=300)
                except grpc.RpcError as exc:
                    result["error"] = exc

            slow = threading.Thread(target=slow_call)
            slow.start()
            in_progress = ("ai_app_model_inferences_in_progress", frozenset({"model": "slow", "version": "1"}.items()))
            deadline = time.monotonic() + 60
            while scrape(running.server).get(in_progress, 0.0) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert scrape(running.server).get(in_progress, 0.0) == 1, "the slow call never reached the model"
            running.server.process.send_signal(signal.SIGTERM)
            slow.join(timeout=300)
        assert "error" not in result, result.get("error")
        assert [o.name for o in result["response"].outputs] == ["y"]  # type: ignore[attr-defined]
        assert running.server.process.wait(timeout=120) == 0
        messages = [str(e["message"]) for e in running.server.log_entries()]
        assert "gRPC server stopping" in messages
        assert "gRPC worker exited" not in messages
        assert not [m for m in messages if "did not stop in time" in m]
    finally:
        running.server.stop()


def test_sigterm_fails_grpc_health_and_readiness_while_still_serving(
    trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    running = start_grpc_server(
        trained_models["iris-logreg"].path, tmp_path, SHUTDOWN_DELAY="60", WEB_CONCURRENCY="1"
    )
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            running.server.process.send_signal(signal.SIGTERM)
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

            def draining() -> bool:
                checks = [health_pb2.HealthCheckRequest(service=s) for s in ("", SERVICE)]
                statuses = {health.Check(check, timeout=10).status for check in checks}
                return statuses == {not_serving} and not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready

            deadline = time.monotonic() + 30
            while not draining():
                assert time.monotonic() < deadline, "health still SERVING or ServerReady true after SIGTERM"
                time.sleep(0.05)
            # Within SHUTDOWN_DELAY calls are still served (load balancers may still send them).
            assert stub.ModelInfer(iris_request(), timeout=10).outputs
        # A second SIGTERM stops at once.
        running.server.process.send_signal(signal.SIGTERM)
        assert running.server.process.wait(timeout=60) == 0
    finally:
        running.server.stop()
