"""Benchmark: `fetch-model` of a 1 GiB blob from Azurite vs a plain SDK download into memory.

    .venv/bin/python benchmarks/fetch.py [--size-mib 1024] [--runs 3] [--write-docs]

Both sides run as fresh subprocesses, timed from start to exit (interpreter start and imports
included on both), alternating, against the same Azurite on 127.0.0.1:
  sdk    BlobClient.download_blob().readall()        (bytes in memory, nothing else)
  fetch  python -m app fetch-model --uri ... --sha256 ... --dest DIR   (hash, write, fsync, rename)
Peak RSS comes from wait4() of each child. Targets: fetch >= 0.9x sdk throughput, fetch peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from app.modelstore import publish_model  # noqa: E402
from benchmarks.svgchart import write_chart  # noqa: E402
from devenv import azurite  # noqa: E402

SDK_DOWNLOAD = """
import os, sys
from azure.storage.blob import BlobClient
blob = BlobClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"], sys.argv[1], sys.argv[2])
data = blob.download_blob().readall()
assert len(data) == int(sys.argv[3])
"""
DOCS = REPO_ROOT / "docs" / "benchmarks.md"
SECTION = "## Fetch"


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one child process, which must succeed."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def write_random_file(path: Path, size: int) -> None:
    block = 16 * 1024 * 1024
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(block, remaining)
            f.write(os.urandom(n))
            remaining -= n


CHARTS = {"throughput": "img/bench-fetch-throughput.svg", "rss": "img/bench-fetch-rss.svg"}


def write_charts(mib: float, sdk_s: float, fetch_s: float, sdk_rss: float, fetch_rss: float,
                 docs_dir: Path = DOCS.parent) -> None:
    """The table's figures as bar charts, beside docs/benchmarks.md."""
    sides = ["SDK download_blob().readall()", "python -m app fetch-model"]
    write_chart(docs_dir / CHARTS["throughput"], f"Fetching a {mib:.0f} MiB model from Azurite: throughput",
                "MiB/s", list(zip(sides, (mib / sdk_s, mib / fetch_s), strict=True)), groups=[1, 0],
                note="median of the runs; higher is better")
    write_chart(docs_dir / CHARTS["rss"], f"Fetching a {mib:.0f} MiB model: peak memory (RSS)", "MB",
                list(zip(sides, (sdk_rss, fetch_rss), strict=True)), groups=[1, 0], note="lower is better")


def update_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(f"\n{SECTION}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + (text[end:] if end != -1 else "")
    DOCS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true", help=f"replace the '{SECTION}' section of {DOCS.name}")
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp_name:
        tmp = Path(tmp_name)
        with azurite.start(tmp / "azurite") as service:
            env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": service.connection_string}
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = service.connection_string
            from azure.storage.blob import BlobServiceClient

            BlobServiceClient.from_connection_string(service.connection_string).create_container("models")
            source = tmp / "source.onnx"
            write_random_file(source, size)
            uri = f"{service.blob_endpoint}/models/bench/1/model.onnx"
            info = publish_model(source, uri, with_card=False)  # random bytes: no ONNX card
            source.unlink()

            sdk_cmd = [sys.executable, "-c", SDK_DOWNLOAD, "models", "bench/1/model.onnx", str(size)]
            dest = tmp / "dest"
            fetch_cmd = [sys.executable, "-m", "app", "fetch-model", "--uri", uri, "--sha256", info.sha256,
                         "--dest", str(dest)]
            results: dict[str, list[tuple[float, int]]] = {"sdk": [], "fetch": []}
            run_child(sdk_cmd, env)  # warm-up: Azurite's and the page cache's first read
            for i in range(args.runs):
                results["sdk"].append(run_child(sdk_cmd, env))
                shutil.rmtree(dest, ignore_errors=True)
                results["fetch"].append(run_child(fetch_cmd, env))
                print(f"run {i + 1}: sdk {results['sdk'][-1][0]:.2f}s, fetch {results['fetch'][-1][0]:.2f}s",
                      file=sys.stderr)

    mib = size / 1048576
    sdk_s = statistics.median(t for t, _ in results["sdk"])
    fetch_s = statistics.median(t for t, _ in results["fetch"])
    sdk_rss = max(r for _, r in results["sdk"]) / 1e6
    fetch_rss = max(r for _, r in results["fetch"]) / 1e6
    ratio = sdk_s / fetch_s

    def runs(side: str) -> str:
        return ", ".join(f"{seconds:.2f}" for seconds, _ in results[side])

    command = f".venv/bin/python benchmarks/fetch.py --size-mib {args.size_mib} --runs {args.runs}"
    section = f"""{SECTION}

`fetch-model` (stream, sha256 while writing, fsync, atomic rename) vs the Azure SDK's plain
`download_blob().readall()` into memory, of the same {mib:.0f} MiB blob from Azurite on 127.0.0.1.
Each side is a fresh process timed from start to exit; median of {args.runs} alternating runs.

Command: `{command}`
Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}

| | seconds (median) | MiB/s | peak RSS |
|---|---:|---:|---:|
| SDK `download_blob().readall()` | {sdk_s:.2f} | {mib / sdk_s:.0f} | {sdk_rss:.0f} MB |
| `python -m app fetch-model` | {fetch_s:.2f} | {mib / fetch_s:.0f} | {fetch_rss:.0f} MB |

![fetch throughput]({CHARTS["throughput"]}) ![fetch peak RSS]({CHARTS["rss"]})

Every run (seconds): SDK {runs("sdk")}; fetch-model {runs("fetch")}.

Throughput ratio fetch/SDK: **{ratio:.2f}x** (target >= 0.9x); fetch peak RSS **{fetch_rss:.0f} MB**
(target < 150 MB).
"""
    print(section)
    if args.write_docs:
        update_docs(section)
        write_charts(mib, sdk_s, fetch_s, sdk_rss, fetch_rss)
    return 0 if ratio >= 0.9 and fetch_rss < 150 else 1


if __name__ == "__main__":
    raise SystemExit(main())
