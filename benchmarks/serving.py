"""Serving benchmark: this service (ONNX, granian) against MLServer (mlserver-sklearn, joblib) side by side.

Both servers get the same trained models (app.training: iris logistic regression and a 50-tree random
forest), the same number of worker processes, and the same load: wrk (a compiled generator, so it
takes little of the CPU the servers need) sending Open Inference Protocol V2 JSON infer requests of
one row over N keep-alive connections for a fixed time, loopback only. MLServer runs with each
`parallel_workers` setting in turn and the best that runs is the one compared. Also measured: the
same HTTP stack with an empty app (benchmarks/empty_server.py), the ceiling our service is a fraction
of; onnxruntime called in-process (one thread); and a graceful shutdown under load (wrk running,
SIGTERM to the server: non-2xx and socket errors counted).

MLServer's pins conflict with this project's, so it runs from its own venv, created on first use.

    python benchmarks/serving.py                       # print the table
    python benchmarks/serving.py --write-docs          # also update "## Serving" in docs/benchmarks.md
    python benchmarks/serving.py --grpc-only --write-docs  # only the gRPC comparison ("## Serving over gRPC")

gRPC (`--grpc`, `--grpc-only`): the same models served over the Open Inference Protocol's gRPC API by
ours (GRPC_WORKERS processes) and by MLServer's gRPC endpoint, loaded by h2load (nghttp2's compiled
HTTP/2 generator, `apt-get install nghttp2-client`) sending one fixed ModelInfer call of 1 row and
of a 64-row batch with raw contents (benchmarks/grpc_load.py). MLServer's settings there trade
requests/s against p99, so the one with the most requests/s and the one with the lowest p99 both run
in every round (picked on a one-row screening run of each setting), and each ratio is against the
better of the two at that figure.

Needs: wrk (`apt-get install wrk`), the project venv with the `bench` extra, network access to PyPI
the first time (MLServer's venv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.config import Settings  # noqa: E402
from app.training import TrainedModel, train_model  # noqa: E402
from benchmarks.grpc_load import GrpcLoad, call_once, infer_request_bytes, run_h2load  # noqa: E402
from benchmarks.svgchart import write_chart  # noqa: E402

MODELS = ("iris-logreg", "iris-forest")
ROW = [5.1, 3.5, 1.4, 0.2]
MLSERVER_VERSION = "1.7.1"
# uvloop 0.22 removed the implicit event loop MLServer 1.7's inference workers rely on at start.
MLSERVER_EXTRA_PINS = ("uvloop<0.22",)
DOCS = REPO / "docs" / "benchmarks.md"
NOTES = (
    "Notes: wrk reports latency without coordinated-omission correction, the same for every server. "
    "Our HTTP front is granian (Rust, hyper) with an RSGI adapter (app/front.py): connections, request "
    "lines and headers are handled without Python; the body is awaited on the worker's event loop; the Flask "
    "app runs once the body is complete, on the event loop (WEB_THREADS=1) or a pool of WEB_THREADS threads. "
    "The infer route is a small WSGI "
    "layer in front of Flask (app/v2/routes.py `InferRoute`) with orjson; the other routes are Flask's. "
    "The `empty app` line is the same server, front and settings with a WSGI app that returns a fixed body: "
    "the ceiling of the HTTP stack. The `onnxruntime in-process` line is `session.run` on one row in a loop "
    "(one thread, no HTTP, no JSON): the ceiling of one worker's model.",
)
SECTION = "## Serving"


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode} before it was ready; log: {log}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout:.0f} s ({url}); log: {log}")


# Both sections say how the servers were started (see `running`).
SESSION_NOTE = (
    "The servers run in the benchmark's session, each in a process group of its own: with a session of its "
    "own (Linux autogroup scheduling shares CPU time between sessions) the load generator's wake-ups waited for "
    "the server's turn: ours measured about a quarter fewer gRPC requests/s, MLServer within its noise."
)


@contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str, log: Path, cwd: Path) -> Iterator[None]:
    with log.open("wb") as log_file:
        # A process group of its own, to stop it whole, but not a session of its own: Linux's autogroup
        # scheduling (kernel.sched_autogroup_enabled) shares CPU time between sessions, which delays
        # the load generator's wake-ups (it is in this session) while the server's session runs, and
        # costs a server with short calls a quarter of its requests/s here (docs/benchmarks.md).
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, process_group=0
        )
    try:
        wait_ready(ready_url, process, log)
        yield
    finally:
        # The whole process group: MLServer's inference workers are its children.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def recorded_command(argv: list[str]) -> str:
    """The command line as the docs show it: without --mlserver-venv's value, a path of the machine that
    ran it (where MLServer is installed does not change the figures)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--mlserver-venv":
            skip = True
        elif not arg.startswith("--mlserver-venv="):
            shown.append(arg)
    return " ".join(["python benchmarks/serving.py", *shown])


def infer_body(outputs: list[str]) -> str:
    return json.dumps(
        {
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}],
            "outputs": [{"name": name} for name in outputs],
        },
        separators=(",", ":"),
    )


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def run_wrk(url: str, body: str, seconds: int, connections: int, threads: int, work_dir: Path) -> LoadResult:
    script = work_dir / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n'
    )
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if "99" not in latency:
        raise RuntimeError(f"wrk completed no requests against {url}:\n{output}")
    requests_total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return LoadResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        requests=requests_total,
        errors=errors + (int(non_2xx.group(1)) if non_2xx else 0),
    )


def ensure_mlserver_venv(venv: Path) -> Path:
    mlserver = venv / "bin" / "mlserver"
    if mlserver.exists():
        return mlserver
    import sklearn

    print(f"creating {venv} with mlserver {MLSERVER_VERSION} (one time)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            f"mlserver=={MLSERVER_VERSION}",
            f"mlserver-sklearn=={MLSERVER_VERSION}",
            # The same scikit-learn that trained the joblib files, so MLServer unpickles them as written.
            f"scikit-learn=={sklearn.__version__}",
            *MLSERVER_EXTRA_PINS,
        ],
        check=True,
    )
    return mlserver


def ours_env(model: TrainedModel, args: argparse.Namespace, port: int, access_log: bool) -> dict[str, str]:
    return {
        **os.environ,
        "ACCESS_LOG": "true" if access_log else "false",
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(args.workers),
        "MODEL_PATH": str(model.path),
        "MODEL_SHA256": model.sha256,
        "MODEL_NAME": model.name,
        "MODEL_VERSION": model.version,
        "PYTHONPATH": str(REPO),
    }


def bench_ours(model: TrainedModel, args: argparse.Namespace, work_dir: Path, access_log: bool) -> LoadResult:
    port = free_port()
    env = ours_env(model, args, port, access_log)
    url = f"http://127.0.0.1:{port}"
    log = work_dir / f"ours-{model.name}-{access_log}.log"  # written to a file, as a container runtime would
    with running([sys.executable, "-m", "app", "serve"], env, f"{url}/v2/health/ready", log, REPO):
        return load(f"{url}/v2/models/{model.name}/infer", infer_body(["label", "probabilities"]), args, work_dir)


def bench_mlserver(
    model: TrainedModel, args: argparse.Namespace, work_dir: Path, mlserver: Path, parallel_workers: int
) -> LoadResult:
    port = free_port()
    models_dir = work_dir / f"mlserver-{model.name}-{parallel_workers}"
    model_dir = models_dir / model.name
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(model.path.with_name("model.joblib"), model_dir / "model.joblib")
    (models_dir / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": parallel_workers,
            }
        )
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model.name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": model.version},
            }
        )
    )
    url = f"http://127.0.0.1:{port}"
    log = work_dir / f"mlserver-{model.name}-{parallel_workers}.log"
    with running(
        [str(mlserver), "start", str(models_dir)],
        dict(os.environ),
        f"{url}/v2/models/{model.name}/ready",
        log,
        models_dir,
    ):
        # The same work as ours: the class and the class probabilities.
        return load(f"{url}/v2/models/{model.name}/infer", infer_body(["predict", "predict_proba"]), args, work_dir)


def load(url: str, body: str, args: argparse.Namespace, work_dir: Path) -> LoadResult:
    run_wrk(url, body, args.warmup, args.connections, args.wrk_threads, work_dir)
    return run_wrk(url, body, args.duration, args.connections, args.wrk_threads, work_dir)


def bench_in_process(model: TrainedModel, seconds: float) -> float:
    """onnxruntime session.run calls per second for one row, one thread, no HTTP: one worker's ceiling."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
    feeds = {"input": np.array([ROW], dtype=np.float32)}
    names = ["label", "probabilities"]
    for _ in range(1000):
        session.run(names, feeds)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(1000):
            session.run(names, feeds)
        calls += 1000
    return calls / elapsed


def best_mlserver(
    model: TrainedModel, args: argparse.Namespace, work_dir: Path, mlserver: Path
) -> tuple[int, dict[int, LoadResult | str]]:
    """Try every parallel_workers setting once; the one with the most requests/s and no errors wins."""
    tried: dict[int, LoadResult | str] = {}
    for setting in args.mlserver_parallel_workers:
        try:
            tried[setting] = bench_mlserver(model, args, work_dir, mlserver, setting)
        except (SystemExit, subprocess.CalledProcessError, RuntimeError) as exc:  # did not start, or no answers
            tried[setting] = f"did not run: {exc}"
        print(f"{model.name} MLServer parallel_workers={setting}: {tried[setting]}", file=sys.stderr)
    ran = {k: v for k, v in tried.items() if isinstance(v, LoadResult) and v.errors == 0}
    if not ran:
        raise SystemExit(f"no MLServer setting ran without errors: {tried}")
    return max(ran, key=lambda k: ran[k].requests_per_s), tried


def bench_empty(args: argparse.Namespace, work_dir: Path) -> LoadResult:
    port = free_port()
    command = [sys.executable, str(REPO / "benchmarks" / "empty_server.py"), "--port", str(port),
               "--workers", str(args.workers)]
    url = f"http://127.0.0.1:{port}"
    with running(command, dict(os.environ), f"{url}/", work_dir / "empty.log", REPO):
        return load(f"{url}/", infer_body(["label", "probabilities"]), args, work_dir)


@dataclass
class ShutdownResult:
    load: LoadResult
    exit_code: int
    shutdown_delay: int


def bench_graceful_shutdown(model: TrainedModel, args: argparse.Namespace, work_dir: Path) -> ShutdownResult:
    """wrk runs; a third of the way in the server gets SIGTERM (the main process only, as kubelet sends it).

    SHUTDOWN_DELAY is longer than the rest of the run, as a Kubernetes preStop delay would be: the
    server keeps serving with readiness failing, then drains in-flight requests and exits.
    """
    port = free_port()
    delay = args.duration + 5
    env = {**ours_env(model, args, port, access_log=False), "SHUTDOWN_DELAY": str(delay)}
    url = f"http://127.0.0.1:{port}"
    log = work_dir / f"shutdown-{model.name}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "app", "serve"], env=env, cwd=REPO, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"{url}/v2/health/ready", process, log)
        timer = threading.Timer(args.duration / 3, process.send_signal, args=(signal.SIGTERM,))
        timer.start()
        result = run_wrk(f"{url}/v2/models/{model.name}/infer", infer_body(["label", "probabilities"]),
                         args.duration, args.connections, args.wrk_threads, work_dir)
        timer.join()
        exit_code = process.wait(timeout=delay + 60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return ShutdownResult(result, exit_code, delay)


# --- gRPC ------------------------------------------------------------------------------------------

GRPC_SECTION = "## Serving over gRPC"
GRPC_BATCHES = (1, 64)


def grpc_loads(
    target: str,
    model: TrainedModel,
    outputs: list[str],
    args: argparse.Namespace,
    work_dir: Path,
    split_port: int | None = None,
) -> dict[int, GrpcLoad]:
    """One h2load run per batch size against a running server; each call is checked once first."""
    results = {}
    for rows in GRPC_BATCHES:
        request = infer_request_bytes(model.name, rows, outputs, ROW)
        response_bytes = call_once(target, request)
        results[rows] = run_h2load(
            target, request, response_bytes, args.duration, args.warmup, args.connections, work_dir, split_port
        )
    return results


def bench_ours_grpc(
    model: TrainedModel, args: argparse.Namespace, work_dir: Path, access_log: bool
) -> dict[int, GrpcLoad]:
    port, grpc_port = free_port(), free_port()
    env = {
        **ours_env(model, args, port, access_log),
        # gRPC workers carry the load; one HTTP worker stays for readiness and metrics, as in a pod.
        "WEB_CONCURRENCY": "1",
        "GRPC_PORT": str(grpc_port),
        "GRPC_WORKERS": str(args.workers),
    }
    log = work_dir / f"ours-grpc-{model.name}-{access_log}.log"
    with running([sys.executable, "-m", "app", "serve"], env, f"http://127.0.0.1:{port}/v2/health/ready", log, REPO):
        target = f"127.0.0.1:{grpc_port}"
        deadline = time.monotonic() + 60
        while True:  # the gRPC workers start beside the HTTP one
            try:
                call_once(target, infer_request_bytes(model.name, 1, [], ROW))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return grpc_loads(target, model, ["label", "probabilities"], args, work_dir, split_port=grpc_port)


def bench_mlserver_grpc(
    model: TrainedModel, args: argparse.Namespace, work_dir: Path, mlserver: Path, parallel_workers: int
) -> dict[int, GrpcLoad]:
    port, grpc_port = free_port(), free_port()
    models_dir = work_dir / f"mlserver-grpc-{model.name}-{parallel_workers}"
    model_dir = models_dir / model.name
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(model.path.with_name("model.joblib"), model_dir / "model.joblib")
    (models_dir / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": grpc_port,
                "metrics_port": free_port(),
                "parallel_workers": parallel_workers,
            }
        )
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model.name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": model.version},
            }
        )
    )
    log = work_dir / f"mlserver-grpc-{model.name}-{parallel_workers}.log"
    ready = f"http://127.0.0.1:{port}/v2/models/{model.name}/ready"
    with running([str(mlserver), "start", str(models_dir)], dict(os.environ), ready, log, models_dir):
        return grpc_loads(f"127.0.0.1:{grpc_port}", model, ["predict", "predict_proba"], args, work_dir)


def bench_empty_grpc(args: argparse.Namespace, work_dir: Path) -> GrpcLoad:
    """The same gRPC stack with a servicer that answers without parsing or inference: the ceiling."""
    port = free_port()
    command = [sys.executable, str(REPO / "benchmarks" / "empty_grpc_server.py"), "--port", str(port),
               "--workers", str(args.workers)]
    with (work_dir / "empty-grpc.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        target = f"127.0.0.1:{port}"
        request = infer_request_bytes("empty", 1, [], ROW)
        deadline = time.monotonic() + 60
        while True:
            try:
                response_bytes = call_once(target, request)
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        return run_h2load(target, request, response_bytes, args.duration, args.warmup, args.connections, work_dir)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def grpc_median(results: list[GrpcLoad]) -> GrpcLoad:
    return GrpcLoad(
        requests_per_s=statistics.median(r.requests_per_s for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def bench_grpc(
    models: dict[str, TrainedModel], args: argparse.Namespace, work_dir: Path, mlserver: Path
) -> str:
    """Ours (defaults, and ACCESS_LOG=false) against MLServer at its best, over gRPC; the docs section.

    MLServer's parallel_workers settings trade requests/s against p99, and the best setting for one
    is often not the best for the other (their requests/s are within the noise of each other, their
    p99 are not): the fastest and the steadiest setting of a one-row screening run both run in every
    round, and each ratio is taken against the better of the two at that figure.
    """
    rows = []
    tried_lines = []
    rounds_lines = []
    for name, model in models.items():
        tried: dict[int, dict[int, GrpcLoad] | str] = {}
        for setting in args.mlserver_parallel_workers:
            try:
                tried[setting] = bench_mlserver_grpc(model, args, work_dir, mlserver, setting)
            except (SystemExit, subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                tried[setting] = f"did not run: {exc}"
            except Exception as exc:  # a gRPC error on the checking call: MLServer answered wrongly
                tried[setting] = f"did not run: {type(exc).__name__}: {exc}"
            print(f"{name} MLServer gRPC parallel_workers={setting}: {tried[setting]}", file=sys.stderr)
        ran = {k: v for k, v in tried.items() if isinstance(v, dict) and not any(r.errors for r in v.values())}
        if not ran:
            raise SystemExit(f"no MLServer gRPC setting ran without errors: {tried}")
        fastest = max(ran, key=lambda k: ran[k][1].requests_per_s)
        steadiest = min(ran, key=lambda k: ran[k][1].p99_ms)
        for setting, result in tried.items():
            figure = (
                "; ".join(f"{b} rows {r.requests_per_s:,.0f} req/s, p99 {r.p99_ms:.1f} ms" for b, r in result.items())
                if isinstance(result, dict) else result
            )
            picks = (("most requests/s", fastest), ("lowest p99", steadiest))
            marks = ", ".join(mark for mark, best in picks if best == setting)
            tried_lines.append(f"- {name}, parallel_workers={setting}: {figure}" + (f" ({marks})" if marks else ""))
        # Each server's runs by the label the report shows; the first is the defaults' (the verdict's).
        ours = {"ai-app": True, "ai-app, ACCESS_LOG=false": False}  # label: ACCESS_LOG
        theirs = {f"MLServer, parallel_workers={s}": s for s in dict.fromkeys((fastest, steadiest))}
        runs: dict[str, list[dict[int, GrpcLoad]]] = {label: [] for label in (*ours, *theirs)}
        for round_number in range(1, args.rounds + 1):
            for label, access_log in ours.items():
                runs[label].append(bench_ours_grpc(model, args, work_dir, access_log=access_log))
            for label, setting in theirs.items():
                runs[label].append(bench_mlserver_grpc(model, args, work_dir, mlserver, setting))
            print(f"{name} gRPC round {round_number}: " + str({k: v[-1] for k, v in runs.items()}), file=sys.stderr)
        for batch in GRPC_BATCHES:
            medians = {label: grpc_median([r[batch] for r in results]) for label, results in runs.items()}
            rows.append((name, batch, {label: medians[label] for label in ours},
                         {label: medians[label] for label in theirs}))
            for label, results in runs.items():
                figures = ", ".join(
                    f"{r[batch].requests_per_s:,.0f} / {r[batch].p99_ms:.1f}"
                    + (f" ({r[batch].split})" if r[batch].split else "")
                    for r in results
                )
                rounds_lines.append(f"- {name}, {batch} rows, {label}: {figures}")
    empty = bench_empty_grpc(args, work_dir)
    print(f"empty gRPC servicer: {empty}", file=sys.stderr)
    return grpc_report(rows, empty, tried_lines, rounds_lines, args)


def grpc_report(
    rows: list[tuple[str, int, dict[str, GrpcLoad], dict[str, GrpcLoad]]],
    empty: GrpcLoad,
    tried_lines: list[str],
    rounds_lines: list[str],
    args: argparse.Namespace,
) -> str:
    lines = [
        GRPC_SECTION,
        "",
        f"Command: `{args.command}`",
        "",
        f"Machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}, shared "
        "with other jobs while measured (re-run on a quiet machine for absolute figures). Load: h2load "
        f"(nghttp2, compiled, one thread), {args.connections} HTTP/2 connections with one call in flight each, "
        f"{args.duration} s after a {args.warmup} s warm-up, {args.rounds} rounds alternating the servers (figures "
        "are medians; errors are totals of failed calls: failed streams, or calls whose response message did not "
        f"arrive), loopback. {SESSION_NOTE} Each call is one ModelInfer with FP32 raw_input_contents of 1 row or "
        "of a 64-row "
        "batch, asking for the class and the class probabilities; each server's answer to it is checked once "
        f"with grpcio before the load. Ours: `GRPC_WORKERS={args.workers}` gRPC processes (plus one idle HTTP "
        f"worker), defaults otherwise; MLServer {MLSERVER_VERSION}'s gRPC endpoint serves the same estimator "
        "through mlserver-sklearn, in the `parallel_workers` setting with the most requests/s and in the one "
        "with the lowest p99 of a one-row screening run (below), both in every round; each ratio is against the "
        f"better of the two at that figure. {load_note(args)}",
        "",
        "| model | rows | server | requests/s | p50 ms | p99 ms | errors | requests/s vs MLServer | "
        "p99 vs MLServer |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for name, batch, ours_by_label, theirs_by_label in rows:
        # Each ratio against MLServer's best at that figure (see bench_grpc).
        rate = max(r.requests_per_s for r in theirs_by_label.values())
        p99 = min(r.p99_ms for r in theirs_by_label.values())
        for label, r in ours_by_label.items():
            lines.append(
                f"| {name} | {batch} | {label} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{r.errors} | {r.requests_per_s / rate:.2f}x | {r.p99_ms / p99:.2f}x |"
            )
        for label, r in theirs_by_label.items():
            rate_mark, p99_mark = ("1x" if r.requests_per_s == rate else ""), ("1x" if r.p99_ms == p99 else "")
            lines.append(
                f"| {name} | {batch} | {label} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{r.errors} | {rate_mark} | {p99_mark} |"
            )
        ours = ours_by_label["ai-app"]
        speedup, tail = ours.requests_per_s / rate, ours.p99_ms / p99
        met = speedup >= 5 and tail <= 0.25 and ours.errors == 0
        verdicts.append(
            f"{name}, {batch} rows (defaults): {speedup:.2f}x the requests/s, {tail:.2f}x the p99, {ours.errors} "
            f"errors -> target (>= 5x, <= 0.25x, 0 errors) {'met' if met else 'NOT met'}; "
            f"{ours.requests_per_s / empty.requests_per_s:.0%} of the empty-servicer ceiling"
        )
    lines += [
        f"| (any) | 1 | empty gRPC servicer, same stack | {empty.requests_per_s:,.0f} | {empty.p50_ms:.2f} | "
        f"{empty.p99_ms:.2f} | {empty.errors} | | |",
        "",
        *[f"- {v}" for v in verdicts],
        "",
        "The `empty gRPC servicer` line is the same processes, threaded server, call threads and options "
        "answering ModelInfer with a fixed response, without parsing or inference "
        "(benchmarks/empty_grpc_server.py): the ceiling of "
        "the gRPC stack on this machine, and a floor for what h2load can drive (h2load and the servers share the "
        "CPUs).",
        "",
        "MLServer gRPC settings tried (one run each; the 1-row figures pick the settings compared, and a setting "
        "with errors is not compared):",
        "",
        *tried_lines,
        "",
        f"Every round (requests/s / p99 ms; for ai-app, in brackets, how the kernel spread the {args.connections} "
        f"connections over the {args.workers} gRPC processes halfway through the run: SO_REUSEPORT hashes each "
        "connection's addresses, and the busier process's queue sets the p99, docs/serving.md):",
        "",
        *rounds_lines,
        "",
    ]
    return "\n".join(lines)


def load_note(args: argparse.Namespace) -> str:
    """The machine's load while measuring: the other jobs sharing its CPUs move every figure."""
    now = os.getloadavg()
    return (f"Load average (1, 5, 15 min) of the machine: {', '.join(f'{x:.1f}' for x in args.load_at_start)} when "
            f"the benchmark started, {', '.join(f'{x:.1f}' for x in now)} when this section was written.")


def median(results: list[LoadResult]) -> LoadResult:
    """Each figure's median over the rounds; errors are summed."""
    return LoadResult(
        requests_per_s=statistics.median(r.requests_per_s for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def report(
    rows: list[tuple[str, LoadResult, LoadResult, LoadResult, float]],
    all_runs: dict[str, dict[str, list[LoadResult]]],
    mlserver_tried: dict[str, tuple[int, dict[int, LoadResult | str]]],
    empty: LoadResult,
    shutdown: ShutdownResult,
    args: argparse.Namespace,
) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        SECTION,
        "",
        f"Command: `{args.command}`",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}. "
        f"Load: wrk, {args.connections} keep-alive connections, {args.wrk_threads} threads, "
        f"{args.duration} s after a {args.warmup} s warm-up, {args.rounds} rounds alternating the servers "
        f"(figures are medians; errors, non-2xx and socket errors, are totals), loopback. {SESSION_NOTE} Each "
        "request is one V2 "
        "JSON infer of one row (FP32 [1, 4]) asking for the class and the class probabilities. "
        f"Ours runs {args.workers} worker processes (`WEB_CONCURRENCY`) with its other defaults (granian, "
        f"`WEB_THREADS={Settings().WEB_THREADS}`, one JSON access-log line per request), and once more with "
        "`ACCESS_LOG=false` "
        f"(errors are still logged); MLServer {MLSERVER_VERSION} serves the same estimator's joblib file "
        "through mlserver-sklearn in its best `parallel_workers` setting (below). The load generator shares "
        f"the machine's CPUs with the server under test. {load_note(args)}",
        "",
        "| model | server | requests/s | p50 ms | p99 ms | errors | requests/s vs MLServer | p99 vs MLServer |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for name, ours, quiet, theirs, in_process in rows:
        speedup = ours.requests_per_s / theirs.requests_per_s
        tail = ours.p99_ms / theirs.p99_ms
        best = mlserver_tried[name][0]
        lines.append(
            f"| {name} | ai-app | {ours.requests_per_s:,.0f} | {ours.p50_ms:.2f} | {ours.p99_ms:.2f} | "
            f"{ours.errors} | {speedup:.2f}x | {tail:.2f}x |"
        )
        lines.append(
            f"| {name} | ai-app, ACCESS_LOG=false | {quiet.requests_per_s:,.0f} | {quiet.p50_ms:.2f} | "
            f"{quiet.p99_ms:.2f} | {quiet.errors} | {quiet.requests_per_s / theirs.requests_per_s:.2f}x | "
            f"{quiet.p99_ms / theirs.p99_ms:.2f}x |"
        )
        lines.append(
            f"| {name} | MLServer, parallel_workers={best} | {theirs.requests_per_s:,.0f} | {theirs.p50_ms:.2f} | "
            f"{theirs.p99_ms:.2f} | {theirs.errors} | 1x | 1x |"
        )
        lines.append(f"| {name} | onnxruntime in-process, 1 thread | {in_process:,.0f} | | | | | |")
        met = speedup >= 10 and tail <= 0.25 and ours.errors == 0
        verdicts.append(
            f"{name} (defaults): {speedup:.2f}x the requests/s, {tail:.2f}x the p99, {ours.errors} errors "
            f"-> target (>= 10x, <= 0.25x, 0 errors) {'met' if met else 'NOT met'}; "
            f"{ours.requests_per_s / empty.requests_per_s:.0%} of the empty-app ceiling"
        )
    lines += [
        f"| (any) | empty app, same server | {empty.requests_per_s:,.0f} | {empty.p50_ms:.2f} | {empty.p99_ms:.2f} | "
        f"{empty.errors} | | |",
        "",
        f"![requests/s]({CHARTS['throughput']}) ![p99 latency]({CHARTS['p99']})",
        "",
        *[f"- {v}" for v in verdicts],
        f"- Graceful shutdown under load ({rows[0][0]}, ACCESS_LOG=false): SIGTERM to the server "
        f"{args.duration / 3:.1f} s into a {args.duration} s wrk run, SHUTDOWN_DELAY={shutdown.shutdown_delay}: "
        f"{shutdown.load.requests:,} requests, {shutdown.load.errors} non-2xx or socket errors, server exit code "
        f"{shutdown.exit_code}.",
        "",
        "MLServer settings tried (one run each, on the first round's load; the best without errors is compared):",
        "",
    ]
    for name, (best, tried) in mlserver_tried.items():
        for setting, result in tried.items():
            figure = (f"{result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms, {result.errors} errors"
                      if isinstance(result, LoadResult) else result)
            lines.append(f"- {name}, parallel_workers={setting}: {figure}{' (best)' if setting == best else ''}")
    lines += ["", *NOTES, "", "Every round (requests/s / p99 ms):", ""]
    labels = {"ours": "ai-app", "quiet": "ai-app, ACCESS_LOG=false", "theirs": "MLServer"}
    for name, runs in all_runs.items():
        for key, label in labels.items():
            figures = ", ".join(f"{r.requests_per_s:,.0f} / {r.p99_ms:.1f}" for r in runs[key])
            lines.append(f"- {name}, {label}: {figures}")
    lines.append("")
    return "\n".join(lines)


CHARTS = {"throughput": "img/bench-serving-throughput.svg", "p99": "img/bench-serving-p99.svg"}
SERVERS = ("ai-app", "ai-app, ACCESS_LOG=false", "MLServer")


def write_charts(rows: list[tuple[str, LoadResult, LoadResult, LoadResult, float]], docs_dir: Path) -> None:
    """requests/s and p99 of each model and server, as in the table (in-process figures left out: they
    are a ceiling, 30x the scale of the servers)."""
    throughput, p99, groups = [], [], []
    for name, ours, quiet, theirs, _ in rows:
        for server, result in zip(SERVERS, (ours, quiet, theirs), strict=True):
            throughput.append((f"{name}, {server}", result.requests_per_s))
            p99.append((f"{name}, {server}", result.p99_ms))
            groups.append(SERVERS.index(server))
    write_chart(docs_dir / CHARTS["throughput"], "V2 infer, one row: requests/s (median of rounds)", "req/s",
                throughput, groups=groups, note="higher is better")
    write_chart(docs_dir / CHARTS["p99"], "V2 infer, one row: p99 latency (median of rounds)", "ms", p99,
                groups=groups, note="lower is better")


def write_section(text: str, path: Path, section: str = SECTION) -> None:
    """Replace (or append) the `section` section, leaving the other sections as they are."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each server; the table shows medians")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
    parser.add_argument("--mlserver-venv", type=Path, default=REPO / ".venv-bench-mlserver")
    parser.add_argument("--mlserver-parallel-workers", type=int, nargs="+", default=[0, 1, 2],
                        help="MLServer parallel_workers settings to try; the best that runs is compared")
    parser.add_argument("--write-docs", action="store_true", help=f"update {SECTION} in docs/benchmarks.md")
    parser.add_argument("--grpc", action="store_true", help=f"also compare over gRPC ({GRPC_SECTION})")
    parser.add_argument("--grpc-only", action="store_true", help="only the gRPC comparison")
    args = parser.parse_args(argv)
    args.load_at_start = os.getloadavg()
    args.command = recorded_command(sys.argv[1:] if argv is None else argv)  # both sections show it
    if (args.grpc or args.grpc_only) and shutil.which("h2load") is None:
        print("h2load is not installed: apt-get install nghttp2-client", file=sys.stderr)
        return 2
    if args.grpc_only:
        mlserver = ensure_mlserver_venv(args.mlserver_venv)
        with tempfile.TemporaryDirectory(prefix="bench-serving-grpc-") as tmp:
            work_dir = Path(tmp)
            models = {name: train_model(name, work_dir / "models", save_joblib=True) for name in args.models}
            grpc_text = bench_grpc(models, args, work_dir, mlserver)
        print(grpc_text)
        if args.write_docs:
            write_section(grpc_text, DOCS, GRPC_SECTION)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    mlserver = ensure_mlserver_venv(args.mlserver_venv)
    rows = []
    all_runs: dict[str, dict[str, list[LoadResult]]] = {}
    mlserver_tried: dict[str, tuple[int, dict[int, LoadResult | str]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work_dir = Path(tmp)
        models = {name: train_model(name, work_dir / "models", save_joblib=True) for name in args.models}
        for name, model in models.items():
            best, tried = best_mlserver(model, args, work_dir, mlserver)
            mlserver_tried[name] = (best, tried)
            runs: dict[str, list[LoadResult]] = {"ours": [], "quiet": [], "theirs": []}
            # Rounds alternate the servers, so a burst of other load on the machine hits both sides.
            for round_number in range(1, args.rounds + 1):
                runs["ours"].append(bench_ours(model, args, work_dir, access_log=True))
                runs["quiet"].append(bench_ours(model, args, work_dir, access_log=False))
                runs["theirs"].append(bench_mlserver(model, args, work_dir, mlserver, best))
                print(f"{name} round {round_number}: " + str({k: v[-1] for k, v in runs.items()}), file=sys.stderr)
            in_process = bench_in_process(model, seconds=3)
            rows.append((name, median(runs["ours"]), median(runs["quiet"]), median(runs["theirs"]), in_process))
            all_runs[name] = runs
        empty = bench_empty(args, work_dir)
        print(f"empty app: {empty}", file=sys.stderr)
        shutdown = bench_graceful_shutdown(models[args.models[0]], args, work_dir)
        print(f"graceful shutdown: {shutdown}", file=sys.stderr)
        grpc_text = bench_grpc(models, args, work_dir, mlserver) if args.grpc else None
    text = report(rows, all_runs, mlserver_tried, empty, shutdown, args)
    print(text)
    if grpc_text:
        print(grpc_text)
    if args.write_docs:
        write_section(text, DOCS)
        write_charts(rows, DOCS.parent)
        if grpc_text:
            write_section(grpc_text, DOCS, GRPC_SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
