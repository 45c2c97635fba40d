"""gRPC load with h2load (nghttp2's compiled HTTP/2 load generator) for benchmarks/serving.py.

h2load knows nothing of gRPC, but a unary gRPC call is an HTTP/2 POST whose body is one
length-prefixed message (a zero compression flag, a 4-byte big-endian length, the protobuf bytes)
with `content-type: application/grpc` and `te: trailers`, so it can send one fixed call over and
over. It judges a call by its HTTP status only, and gRPC reports failures with status 200 and a
`grpc-status` trailer, so the call is first made once with a real gRPC client and must succeed with
a known response size; under load the response bytes h2load received are compared with that size
(a failed call carries no message), and the servers' own counts are read where they have them.
Latency percentiles come from h2load's per-request log (--log-file).

With several gRPC worker processes on one port (SO_REUSEPORT) the kernel picks each connection's
process by a hash of its addresses, and h2load's connections stay where they land: a 10/6 split of 16
makes the busier process's queue, and the p99, longer than an 8/8 one. `connection_split` records the
split of each run so the figures can be read with it (docs/serving.md).
"""

from __future__ import annotations

import os
import re
import statistics
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class GrpcLoad:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    split: str = ""  # connections per server process in the middle of the run, largest first ("9/7")


def infer_request_bytes(model_name: str, rows: int, outputs: list[str], row: list[float]) -> bytes:
    """A serialized ModelInferRequest: `rows` copies of `row` as FP32 raw contents."""
    from app.oip_grpc.protocol import open_inference_grpc_pb2 as pb

    request = pb.ModelInferRequest(model_name=model_name)
    request.inputs.add(name="input", datatype="FP32", shape=[rows, len(row)])
    request.raw_input_contents.append(np.tile(np.array(row, dtype=np.float32), (rows, 1)).tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request.SerializeToString()


def call_once(target: str, request: bytes) -> int:
    """Make the call with grpcio; the length of the response message (raises grpc.RpcError if it fails)."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(INFER_PATH)  # bytes in, bytes out: the exact frame h2load will send
        response: bytes = call(request, timeout=30)
    return len(response)


def connection_split(port: int) -> str:
    """How the established TCP connections accepted on `port` are spread over the processes that
    listen on it, largest first: "9/7", or "16/0" when one process has them all.

    Read from /proc (the kernel's TCP tables, and each process's socket descriptors), for the
    processes this user can see; "" when no process listens on the port.
    """
    listening, established = set(), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # IPv4-mapped addresses are in tcp6
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl local_address rem_address st ... inode (the 10th)
            if int(fields[1].rsplit(":", 1)[1], 16) != port:
                continue
            if fields[3] == "0A":  # LISTEN
                listening.add(f"socket:[{fields[9]}]")
            elif fields[3] == "01":  # ESTABLISHED
                established.add(f"socket:[{fields[9]}]")
    per_process: dict[str, int] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            descriptors = os.listdir(fd_dir)
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(fd_dir / descriptor)
            except OSError:
                continue
            if target in listening:
                per_process.setdefault(fd_dir.parent.name, 0)
            elif target in established:
                per_process[fd_dir.parent.name] = per_process.get(fd_dir.parent.name, 0) + 1
    return "/".join(str(count) for count in sorted(per_process.values(), reverse=True))


def run_h2load(
    target: str,
    request: bytes,
    response_bytes: int,
    seconds: int,
    warmup: int,
    connections: int,
    work_dir: Path,
    split_port: int | None = None,
) -> GrpcLoad:
    """One h2load run; with `split_port`, the connection split on that port halfway through it."""
    body = work_dir / "grpc-body.bin"
    body.write_bytes(struct.pack(">?I", False, len(request)) + request)
    log = work_dir / "h2load.log"
    log.unlink(missing_ok=True)
    command = [
        "h2load", "-c", str(connections), "-m", "1", "-t", "1",
        "-D", str(seconds), "--warm-up-time", str(warmup),
        "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers",
        "--log-file", str(log), f"http://{target}{INFER_PATH}",
    ]
    split = ""
    deadline = time.monotonic() + seconds + warmup + 60
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as h2load:
        try:
            if split_port is not None:
                time.sleep(warmup + seconds / 2)
                split = connection_split(split_port)
            output, errors = h2load.communicate(timeout=max(deadline - time.monotonic(), 1))
        except BaseException:
            h2load.kill()  # a hung h2load must not hang the benchmark (Popen's exit waits for it)
            raise
    if h2load.returncode != 0:
        raise subprocess.CalledProcessError(h2load.returncode, command, output, errors)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                     output)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
    data = re.search(r"traffic: .*?\((\d+)\) data", output)
    if not (done and rate and data):
        raise RuntimeError(f"unexpected h2load output:\n{output}")
    succeeded, failed, errored = int(done.group(2)), int(done.group(3)), int(done.group(4))
    received = int(data.group(1))
    # Each successful call carries one length-prefixed response message: fewer bytes, failed calls.
    framed = response_bytes + 5
    short = max(0, (succeeded * framed - received) // framed)
    durations = [int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line.strip()]
    if not durations:
        raise RuntimeError(f"h2load completed no requests against {target}:\n{output}")
    cuts = statistics.quantiles(durations, n=100)
    return GrpcLoad(
        requests_per_s=float(rate.group(1)),
        p50_ms=statistics.median(durations),
        p99_ms=cuts[98],
        requests=succeeded + failed + errored,
        errors=failed + errored + short,
        split=split,
    )
