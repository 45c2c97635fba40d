"""Benchmark: the time the model gates add to a promotion.

    .venv/bin/python benchmarks/model_gates.py [--rows 10000] [--big-mb 100] [--runs 3]

For each pair (old -> new model) the whole model gate runs as envbot runs it, against a real Azurite
on 127.0.0.1: read and verify both model cards, compare signatures, fetch both models and the
evaluation data set by digest, run both with onnxruntime on every row, and apply the rules. It is
timed end to end, and the evaluation alone is reported beside it. There is no peer: no GitOps
promotion tool measures models (see docs/model-releases.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from app.modelstore import publish_model  # noqa: E402
from app.training import train_model, write_eval_dataset  # noqa: E402
from bot.evaluation import evaluate  # noqa: E402
from bot.modeldiff import MetricRule  # noqa: E402
from bot.modelgates import EvaluationSpec, ModelGatePolicy, model_report  # noqa: E402
from bot.values import ModelPin  # noqa: E402
from devenv import azurite  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gates-") as tmp_name:
        tmp = Path(tmp_name)
        with azurite.start(tmp / "azurite") as service:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = service.connection_string
            from azure.storage.blob import BlobServiceClient

            blob = BlobServiceClient.from_connection_string(service.connection_string)
            blob.create_container("models")
            data = tmp / "eval.csv"
            data_sha = write_eval_dataset(data, rows=args.rows)
            blob.get_blob_client("models", "iris-eval/1/eval.csv").upload_blob(data.read_bytes())
            spec = EvaluationSpec(f"{service.blob_endpoint}/models/iris-eval/1/eval.csv", data_sha, "label",
                                  "accuracy")
            gates = ModelGatePolicy("compatible", (MetricRule("accuracy", min=0.5, max_drop=0.5),))
            rows = []
            for name, size in (("iris-logreg", None), ("iris-forest", None), ("iris-big", args.big_mb)):
                pins = []
                for version in ("1", "2"):
                    trained = train_model(name, tmp / "models", version, size_mb=size)
                    uri = f"{service.blob_endpoint}/models/{name}/{version}/model.onnx"
                    info = publish_model(trained.path, uri)
                    pins.append(ModelPin("blob", name, version, uri, info.sha256))
                whole, only_eval = [], []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    report = model_report(gates, spec, pins[0], pins[1])
                    whole.append(time.perf_counter() - started)
                    assert not report.failures, report.failures
                    started = time.perf_counter()
                    evaluate(tmp / "models" / name / "1" / "model.onnx", tmp / "models" / name / "2" / "model.onnx",
                             data, "label", "accuracy")
                    only_eval.append(time.perf_counter() - started)
                size_mib = (tmp / "models" / name / "2" / "model.onnx").stat().st_size / 1048576
                rows.append((name, size_mib, statistics.median(whole), statistics.median(only_eval)))
    print(f"Model gate time per promotion ({args.rows:,}-row evaluation set, median of {args.runs}; "
          f"{os.cpu_count()} CPUs, Azurite on loopback)\n")
    print("| model | size | whole gate (cards, fetch both + data set, evaluate, rules) | evaluation only |")
    print("|---|---|---|---|")
    for name, size_mib, whole_s, eval_s in rows:
        print(f"| {name} | {size_mib:.1f} MiB | {whole_s:.2f} s | {eval_s:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
