"""`fetch-model`: download a pinned model version into a directory (what the init container runs)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from app.cli import fail
from app.logs import configure_logging
from app.modelstore import ModelStoreError, fetch_model
from app.modelstore.digest import normalize_sha256

PROG = "ai-app fetch-model"
JSON_SCHEMA = "fetch-model"   # app/schemas/fetch-model.json: the shape of --json output (docs/cli.md)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", default=os.environ.get("MODEL_URI"),
                        help="model URI: https://<account>.blob.core.windows.net/<container>/<name>/<version>/"
                             "model.onnx or s3://<bucket>/<name>/<version>/model.onnx (default: $MODEL_URI)")
    parser.add_argument("--sha256", default=os.environ.get("MODEL_SHA256"),
                        help="the pinned digest the file must have (default: $MODEL_SHA256)")
    parser.add_argument("--dest", type=Path, required=True, help="directory to write model.onnx into")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress line (default: only when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--attempts", type=int, default=6,
                        help="give up after this many consecutive failed attempts (default: 6)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # Kubernetes stops an init container with SIGTERM: unwind so the temp file is removed.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    if not args.uri or not args.sha256:
        return fail(PROG, "--uri and --sha256 are required (or MODEL_URI and MODEL_SHA256)", kind="bad-input",
                    as_json=args.json)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        path = fetch_model(args.uri, args.sha256, args.dest, progress=progress, attempts=args.attempts)
    except ModelStoreError as exc:
        return fail(PROG, str(exc), as_json=args.json)
    sha256 = normalize_sha256(args.sha256, "--sha256")
    if args.json:
        print(json.dumps({"uri": args.uri, "path": str(path), "sha256": sha256, "size": path.stat().st_size}))
    else:
        print(f"{path} sha256:{sha256}")
    return 0
