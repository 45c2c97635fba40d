"""The service's gRPC stack with an empty servicer: GRPC_WORKERS-style forked processes, each the
service's threaded server (app.oip_grpc.server.build_server, its options and call threads) on the
shared port, answering ModelInfer with a fixed small response without parsing the request. Its
calls/s is the ceiling the real service is measured against, and a bound on what the load generator
can drive.

    python benchmarks/empty_grpc_server.py --port 8081 --workers 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings

RESPONSE = b"\x0a\x05empty"  # a ModelInferResponse with model_name "empty"


def serve(port: int) -> None:
    import grpc

    from app.oip_grpc.server import build_server, new_call_threads
    from app.oip_grpc.service import SERVICE_NAME

    settings = Settings(GRPC_PORT=port)
    call_threads = new_call_threads(settings)

    def model_infer(request: bytes, context: grpc.ServicerContext) -> bytes:
        call_threads.request_received()  # as the service's handlers do
        return RESPONSE

    server = build_server(settings, call_threads)
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.wait_for_termination()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")  # before any grpc import, as the service does
    workers = [context.Process(target=serve, args=(args.port,)) for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    signal.signal(signal.SIGTERM, lambda *_: [w.terminate() for w in workers])
    for worker in workers:
        worker.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
