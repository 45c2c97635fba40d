"""`publish-model`: upload a model file as a new, immutable version (what CI runs after training)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli import add_renamed_option, progress
from app.model import ModelError
from app.modelcheck import load_onnx, signature
from app.modelstore import ModelStoreError, model_uri, publish_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the ONNX model file")
    parser.add_argument("--uri", help="full model URI (.../<container>/<name>/<version>/model.onnx or s3://...)")
    parser.add_argument("--store", help="the store instead of --uri: https://<account>.blob.core.windows.net/"
                                        "<container> or s3://<bucket>; needs --model-name and --model-version")
    add_renamed_option(parser, "--model-name", "--name", dest="name", help="model name (with --store)")
    add_renamed_option(parser, "--model-version", "--version", dest="version", help="model version (with --store)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _target_uri(args: argparse.Namespace) -> str:
    if args.uri:
        if args.store or args.name or args.version:
            raise ModelStoreError("give either --uri or --store/--model-name/--model-version, not both")
        return args.uri
    if not (args.store and args.name and args.version):
        raise ModelStoreError("give --uri, or all of --store, --model-name and --model-version")
    return model_uri(args.store, args.name, args.version)


def run(args: argparse.Namespace) -> int:
    try:
        uri = _target_uri(args)
        # What the server would do at pod start, now: a file onnxruntime cannot load is never published.
        progress("ai-app publish-model", f"loading {args.file} with onnxruntime")
        model = load_onnx(args.file)
    except ModelStoreError as exc:
        print(f"ai-app publish-model: {exc}", file=sys.stderr)
        return 1
    except ModelError as exc:
        print(f"ai-app publish-model: refusing to publish: {exc}", file=sys.stderr)
        return 1
    model_signature = signature(model)
    del model
    try:
        size = args.file.stat().st_size
        progress("ai-app publish-model", f"hashing and uploading {size / 1e6:.1f} MB to {uri}")
        info = publish_model(args.file, uri)
    except ModelStoreError as exc:
        print(f"ai-app publish-model: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info.as_dict() | {"signature": model_signature}))
    else:
        print(f"{info.uri} sha256:{info.sha256}")
        print(f"signature: {model_signature}")
    return 0
