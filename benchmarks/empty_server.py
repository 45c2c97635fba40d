"""The service's HTTP stack with an empty app: granian, app.front.HttpFront, a WSGI app that returns a
fixed JSON body. Its requests/s is the ceiling the real service is measured against.

    python benchmarks/empty_server.py --port 8080 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import load_settings
from app.front import HttpFront
from app.http_server import InferenceServer, server_options

BODY = b'{"ok":true}'


def empty_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settings = dataclasses.replace(load_settings(), PORT=args.port, BIND_HOST="127.0.0.1", WEB_CONCURRENCY=args.workers)
    front = HttpFront(
        empty_app,
        max_request_bytes=settings.MAX_REQUEST_BYTES,
        body_timeout=settings.BODY_TIMEOUT,
        threads=settings.WEB_THREADS,
    )

    class Flag:
        value = 0

    InferenceServer(settings, Flag(), **server_options(settings)).serve(target_loader=lambda _target: front)


if __name__ == "__main__":
    main()
