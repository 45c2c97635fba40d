"""`python -m app serve`: the real server (granian) as a subprocess on 127.0.0.1 with two workers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.training import TrainedModel

REPO = Path(__file__).resolve().parents[2]
ROW = [5.1, 3.5, 1.4, 0.2]
INFER_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    tmp_dir: Path

    def log_entries(self) -> list[dict[str, object]]:
        """Every stderr line, parsed: the test fails if any line is not a JSON object."""
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def server_env(model_path: Path, tmp_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "PROMETHEUS_", "WEB_"))}
    env.update(
        PORT=str(free_port()),
        BIND_HOST="127.0.0.1",
        WEB_CONCURRENCY="2",
        MODEL_PATH=str(model_path),
        MODEL_NAME="iris",
        MODEL_VERSION="1",
        SOURCE_REVISION="feedbee",
        TMPDIR=str(tmp_dir),
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def start_server(env: dict[str, str], tmp_dir: Path) -> Server:
    log_path = tmp_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "app", "serve"], env=env, stderr=log, stdout=log, cwd=REPO)
    server = Server(process, f"http://127.0.0.1:{env['PORT']}", log_path, tmp_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server not ready within 60 s:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def server(trained_models: dict[str, TrainedModel], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = trained_models["iris-logreg"]
    tmp_dir = tmp_path_factory.mktemp("serve")
    server = start_server(server_env(model.path, tmp_dir, MODEL_SHA256=model.sha256), tmp_dir)
    yield server
    server.stop()


def worker_pids(server: Server, expected: int = 2) -> set[int]:
    """Pids of the booted workers; waits for `expected` of them, as readiness needs only the first."""
    deadline = time.monotonic() + 30
    while True:
        pids = {
            int(str(entry["message"]).rsplit(" ", 1)[1])
            for entry in server.log_entries()
            if str(entry["message"]).startswith("Spawning worker-")
        }
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def test_endpoints_over_http(server: Server, trained_models: dict[str, TrainedModel]) -> None:
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).json() == {"live": True}
    version = requests.get(f"{server.url}/version", timeout=5).json()
    assert version["source_revision"] == "feedbee"
    assert version["model"] == {
        "name": "iris",
        "version": "1",
        "sha256": trained_models["iris-logreg"].sha256,
        "loaded": True,
        "card": None,
    }
    response = requests.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=5)
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == [0]
    assert requests.get(f"{server.url}/nowhere", timeout=5).json()["error"]


def test_two_workers_share_one_preloaded_model(server: Server) -> None:
    assert len(worker_pids(server)) == 2
    loads = [e for e in server.log_entries() if e["message"] == "model loaded"]
    assert len(loads) == 1  # loaded once, in the main process, before the workers forked
    assert loads[0]["pid"] == server.process.pid


def test_logs_are_json_lines_with_request_ids(server: Server) -> None:
    requests.post(
        f"{server.url}/v2/models/iris/infer", json=INFER_BODY, headers={"X-Request-ID": "json-log-1"}, timeout=5
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = server.log_entries()  # raises if any line is not JSON
        matching = [e for e in entries if e.get("request_id") == "json-log-1"]
        if matching:
            break
        time.sleep(0.1)
    assert matching[0]["status"] == 200
    assert matching[0]["route"] == "/v2/models/<name>/infer"
    assert matching[0]["pid"] in worker_pids(server)


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def infer_count(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    key = frozenset(
        {
            "protocol": "rest",
            "method": "POST",
            "route": "/v2/models/<name>/infer",
            "status": "200",
            "model": "iris",
            "version": "1",
        }.items()
    )
    return found.get(("ai_app_http_requests_total", key), 0.0)


def test_metrics_aggregate_across_workers(server: Server) -> None:
    before = infer_count(scrape(server))
    sent = 0

    def infer(_: int) -> int:
        # A new connection per request, so the kernel spreads them over both workers' accept loops.
        with requests.Session() as session:
            return session.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=10).status_code

    serving_pids: set[int] = set()
    for _ in range(20):  # until both workers have served; each round is 64 concurrent requests
        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(infer, range(64))) == {200}
        sent += 64
        serving_pids = {int(e["pid"]) for e in server.log_entries() if e.get("route") == "/v2/models/<name>/infer"}
        if len(serving_pids) == 2:
            break
    assert serving_pids == worker_pids(server)
    # Every scrape, whichever worker answers it, sees the sum over both workers.
    for _ in range(4):
        assert infer_count(scrape(server)) - before == sent


def test_bad_requests_do_not_kill_workers(server: Server) -> None:
    pids = worker_pids(server)
    bad = [
        {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"data": b"x" * (9 * 1024 * 1024), "headers": {"Content-Type": "application/json"}},
        {"json": {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2], [3]]}]}},
        {"data": b"{}", "headers": {"Inference-Header-Content-Length": "-5"}},
    ]
    for kwargs in bad:
        response = requests.post(f"{server.url}/v2/models/iris/infer", timeout=10, **kwargs)
        assert 400 <= response.status_code < 500
        assert response.json()["error"]
    assert requests.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=5).status_code == 200
    assert worker_pids(server) == pids


def test_tritonclient_works_unchanged(server: Server, trained_models: dict[str, TrainedModel]) -> None:
    import onnxruntime as ort
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", model_version="1")
    assert not client.is_model_ready("other")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = client.get_model_metadata("iris")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]

    rows = np.array([ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    session = ort.InferenceSession(str(trained_models["iris-logreg"].path), providers=["CPUExecutionProvider"])
    expected_label, expected_probabilities = session.run(["label", "probabilities"], {"input": rows})
    for binary in (False, True):
        features = httpclient.InferInput("input", list(rows.shape), "FP32")
        features.set_data_from_numpy(rows, binary_data=binary)
        outputs = [
            httpclient.InferRequestedOutput("label", binary_data=binary),
            httpclient.InferRequestedOutput("probabilities", binary_data=binary),
        ]
        result = client.infer("iris", [features], outputs=outputs, request_id=f"triton-{binary}")
        assert result.get_response()["id"] == f"triton-{binary}"
        np.testing.assert_array_equal(result.as_numpy("label"), expected_label)
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected_probabilities, rtol=1e-6)
    # No outputs requested: tritonclient asks for every output in binary.
    features = httpclient.InferInput("input", list(rows.shape), "FP32")
    features.set_data_from_numpy(rows)
    result = client.infer("iris", [features], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("label"), expected_label)
    client.close()


def build_slow_model(path: Path) -> Path:
    """A model whose run time the caller chooses: `iterations` rounds of a 256x256 matmul over `x`."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    weights = numpy_helper.from_array(np.eye(256, dtype=np.float32) * 0.5, "weights")
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "weights"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
            helper.make_node("Identity", ["condition_in"], ["condition_out"]),
        ],
        "round",
        [
            helper.make_tensor_value_info("round_index", TensorProto.INT64, []),
            helper.make_tensor_value_info("condition_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("condition_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, None),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["iterations"], ["trip_count"]),
            helper.make_node(
                "Constant", [], ["keep_going"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])
            ),
            helper.make_node("Loop", ["trip_count", "keep_going", "x"], ["y"], body=body),
        ],
        "slow",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256]),
            helper.make_tensor_value_info("iterations", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 256])],
        initializer=[weights],
    )
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    model = build_slow_model(tmp_path / "slow.onnx")
    # Two app threads: with one, the worker running the slow request would answer the scrapes below
    # only after it (requests run one at a time on its event loop).
    env = server_env(model, tmp_path, MODEL_NAME="slow", GRACEFUL_TIMEOUT="120", WEB_THREADS="2")
    server = start_server(env, tmp_path)
    try:
        x = np.ones((64, 256), dtype=np.float32)
        body = {
            "inputs": [
                {"name": "x", "shape": [64, 256], "datatype": "FP32", "data": x.ravel().tolist()},
                {"name": "iterations", "shape": [1], "datatype": "INT64", "data": [10000]},
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
        result: dict[str, requests.Response] = {}
        slow = threading.Thread(
            target=lambda: result.setdefault(
                "response", requests.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=300)
            )
        )
        slow.start()
        in_progress = 0.0
        deadline = time.monotonic() + 60
        while in_progress < 1 and time.monotonic() < deadline:
            found = scrape(server)
            in_progress = found.get(
                ("ai_app_model_inferences_in_progress", frozenset({"model": "slow", "version": "1"}.items())), 0.0
            )
            time.sleep(0.05)
        assert in_progress == 1, "the slow request never reached the model"

        server.process.send_signal(signal.SIGTERM)
        slow.join(timeout=300)
        assert result["response"].status_code == 200
        assert result["response"].headers["Inference-Header-Content-Length"]
        assert server.process.wait(timeout=120) == 0
        # Workers exit cleanly: no C++ runtime abort at exit (a raw "terminate called ..." line would
        # fail the JSON parse) and no worker the server saw die.
        messages = [str(entry["message"]) for entry in server.log_entries()]
        assert not [m for m in messages if "Unexpected exit" in m or "SIGABRT" in m]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/v2/health/live", timeout=5)
        # The serve command removes the metrics directory it created under TMPDIR.
        assert not list(tmp_path.glob("ai-app-metrics-*"))
    finally:
        server.stop()


def test_sigterm_drains_for_the_shutdown_delay_with_readiness_failing(
    trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    model = trained_models["iris-logreg"]
    server = start_server(server_env(model.path, tmp_path, SHUTDOWN_DELAY="3"), tmp_path)
    try:
        with requests.Session() as kept_alive:
            assert kept_alive.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=5).ok
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            # Still serving during the delay, on kept-alive and on new connections; only readiness fails.
            assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
            assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
            assert kept_alive.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=5).ok
            assert requests.post(f"{server.url}/v2/models/iris/infer", json=INFER_BODY, timeout=5).ok
        assert server.process.wait(timeout=60) == 0
    finally:
        server.stop()


def test_a_long_request_does_not_hold_up_short_ones(tmp_path: Path) -> None:
    # Whichever worker took the long request, short requests meanwhile are answered: by the other
    # worker, or by the busy worker's second app thread (onnxruntime releases the GIL while it runs).
    model = build_slow_model(tmp_path / "slow.onnx")
    server = start_server(server_env(model, tmp_path, MODEL_NAME="slow", WEB_THREADS="2"), tmp_path)
    try:
        url = f"{server.url}/v2/models/slow/infer"

        def body(iterations: int) -> dict[str, object]:
            return {
                "inputs": [
                    {"name": "x", "shape": [64, 256], "datatype": "FP32", "data": [1.0] * (64 * 256)},
                    {"name": "iterations", "shape": [1], "datatype": "INT64", "data": [iterations]},
                ],
                "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
            }

        slow = threading.Thread(
            target=lambda: requests.post(url, json=body(10000), headers={"X-Request-ID": "slow"}, timeout=300)
        )
        slow.start()
        in_progress_key = ("ai_app_model_inferences_in_progress", frozenset({"model": "slow", "version": "1"}.items()))
        deadline = time.monotonic() + 60
        while scrape(server).get(in_progress_key, 0.0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        with requests.Session() as session:  # one keep-alive connection, whichever worker holds it
            for index in range(6):
                response = session.post(url, json=body(1), headers={"X-Request-ID": f"quick-{index}"}, timeout=60)
                assert response.status_code == 200
        # The premise: the slow request was still running while the quick ones were served.
        assert scrape(server)[in_progress_key] == 1
        slow.join(timeout=300)
    finally:
        server.stop(timeout=120)


def test_chunked_request_bodies_are_read(server: Server) -> None:
    payload = json.dumps(INFER_BODY).encode()
    chunks = iter([payload[:10], payload[10:]])  # a generator body: requests sends it chunked
    response = requests.post(
        f"{server.url}/v2/models/iris/infer", data=chunks, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0]


def test_sha256_mismatch_exits_non_zero_naming_both_digests(
    trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    model = trained_models["iris-forest"]
    wrong = "ab" * 32
    env = server_env(model.path, tmp_path, MODEL_SHA256=wrong)
    completed = subprocess.run(
        [sys.executable, "-m", "app", "serve"], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert completed.returncode == 1
    assert wrong in completed.stderr
    assert model.sha256 in completed.stderr
    entry = json.loads(completed.stderr.strip().splitlines()[-1])
    assert (entry["level"], entry["expected_sha256"], entry["actual_sha256"]) == ("ERROR", wrong, model.sha256)
    assert not list(tmp_path.glob("ai-app-metrics-*"))


@pytest.mark.parametrize(
    ("env", "fragment", "code"),
    [
        ({"MODEL_PATH": ""}, "MODEL_PATH is not set", 2),
        ({"MODEL_SHA256": "xyz"}, "MODEL_SHA256", 2),
        ({"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY='two': expected an integer", 2),
        ({"MODEL_PATH": "/nonexistent/model.onnx"}, "cannot read model file", 1),
    ],
)
def test_bad_configuration_exits_non_zero(
    trained_models: dict[str, TrainedModel], tmp_path: Path, env: dict[str, str], fragment: str, code: int
) -> None:
    full_env = server_env(trained_models["iris-logreg"].path, tmp_path, **env)
    completed = subprocess.run(
        [sys.executable, "-m", "app", "serve"], env=full_env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert completed.returncode == code
    assert fragment in completed.stderr


def test_serve_does_not_import_the_training_or_cloud_stacks() -> None:
    code = (
        "import sys\n"
        "from app.main import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sklearn', 'skl2onnx', 'boto3', 'azure.storage.blob') if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 0, completed.stderr
    assert "--workers" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_unknown_verb_is_a_usage_error() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "app", "deploy"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 2
    assert "invalid choice: 'deploy'" in completed.stderr


def raw_exchange(server: Server, data: bytes, timeout: float = 30) -> bytes:
    """Send raw bytes on a new connection; everything the server sends until it closes the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        # The server may answer and close before taking everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431),
        (b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ],
    ids=["bad-request-line", "uri-too-long", "headers-too-large", "bad-content-length"],
)
def test_errors_the_http_server_raises_itself(server: Server, request_bytes: bytes, status: int) -> None:
    # hyper answers these before any Python runs: the status, no body (so no HTML), then it closes.
    head, _, body = raw_exchange(server, request_bytes).partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"content-length: 0" in head.lower()
    assert body == b""
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200


def test_oversized_bodies_are_refused_without_reading_them(server: Server) -> None:
    # A declared length over MAX_REQUEST_BYTES is refused on the headers alone.
    sized = raw_exchange(
        server, b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{"
    )
    assert sized.startswith(b"HTTP/1.1 413 ")
    assert b'{"error":"request body exceeds MAX_REQUEST_BYTES' in sized
    # A chunked body is counted as it arrives and refused once it passes the limit (not cut and run).
    chunk = b"%x\r\n%s\r\n" % (1024 * 1024, b" " * (1024 * 1024))
    chunked = raw_exchange(
        server,
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 12,
    )
    assert chunked.startswith(b"HTTP/1.1 413 ")
    assert b"MAX_REQUEST_BYTES (8388608 bytes)" in chunked
