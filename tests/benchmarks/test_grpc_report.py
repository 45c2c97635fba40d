"""The gRPC comparison's verdict: each ratio against MLServer's best setting at that figure."""

from __future__ import annotations

import argparse

from benchmarks.grpc_load import GrpcLoad
from benchmarks.serving import grpc_report


def load(rate: float, p99: float) -> GrpcLoad:
    return GrpcLoad(requests_per_s=rate, p50_ms=p99 / 2, p99_ms=p99, requests=int(rate * 10), errors=0)


def report(ours: GrpcLoad) -> str:
    args = argparse.Namespace(connections=16, duration=10, warmup=3, rounds=3, workers=2, load_at_start=(0, 0, 0),
                              command="python benchmarks/serving.py --grpc-only")
    theirs = {
        "MLServer, parallel_workers=2": load(800, 40.0),  # the most requests/s, by a little
        "MLServer, parallel_workers=0": load(760, 27.0),  # the lowest p99, by a lot
    }
    row = ("iris-logreg", 1, {"ai-app": ours, "ai-app, ACCESS_LOG=false": ours}, theirs)
    return grpc_report([row], load(8000, 3.0), [], [], args)


def test_requests_per_s_and_p99_are_each_compared_with_mlservers_best_at_it() -> None:
    text = report(load(4400, 7.0))  # 5.5x the best rate; 0.26x the best p99 (but 0.18x the fastest's)
    assert "Command: `python benchmarks/serving.py --grpc-only`" in text
    assert "| iris-logreg | 1 | ai-app | 4,400 | 3.50 | 7.00 | 0 | 5.50x | 0.26x |" in text
    assert "| iris-logreg | 1 | MLServer, parallel_workers=2 | 800 | 20.00 | 40.00 | 0 | 1x |  |" in text
    assert "| iris-logreg | 1 | MLServer, parallel_workers=0 | 760 | 13.50 | 27.00 | 0 |  | 1x |" in text
    assert "5.50x the requests/s, 0.26x the p99, 0 errors -> target (>= 5x, <= 0.25x, 0 errors) NOT met" in text
    assert "-> target (>= 5x, <= 0.25x, 0 errors) met" in report(load(4400, 6.7))
