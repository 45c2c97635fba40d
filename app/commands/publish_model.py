"""`publish-model`: upload a model file as a new, immutable version (what CI runs after training)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli import add_renamed_option, fail, progress
from app.model import ModelError
from app.modelcheck import load_onnx
from app.modelstore import ModelStoreError, model_uri, publish_model

PROG = "ai-app publish-model"
JSON_SCHEMA = "publish-model"   # app/schemas/publish-model.json: the shape of --json output (docs/cli.md)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the ONNX model file")
    parser.add_argument("--uri", help="full model URI (.../<container>/<name>/<version>/model.onnx or s3://...)")
    parser.add_argument("--store", help="the store instead of --uri: https://<account>.blob.core.windows.net/"
                                        "<container> or s3://<bucket>; needs --model-name and --model-version")
    add_renamed_option(parser, "--model-name", "--name", dest="name", help="model name (with --store)")
    add_renamed_option(parser, "--model-version", "--version", dest="version", help="model version (with --store)")
    parser.add_argument("--metrics", type=Path, metavar="FILE.json",
                        help='metrics measured on an evaluation data set, recorded in the model card: '
                             '{"dataset": {"name": ..., "sha256": ...}, "metrics": {"accuracy": 0.97}}')
    parser.add_argument("--source", metavar="COMMIT",
                        help="the training commit (URL or sha), recorded in the model card as lineage")
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
        # What the server does at pod start, done now: a file onnxruntime cannot load (or whose
        # outputs are no V2 tensors) is never published.
        progress(PROG, f"loading {args.file} with onnxruntime")
        load_onnx(args.file)
        progress(PROG, f"hashing and uploading {args.file.stat().st_size / 1e6:.1f} MB to {uri}")
        info = publish_model(args.file, uri, metrics_file=args.metrics, source=args.source)
    except ModelError as exc:
        return fail(PROG, f"refusing to publish: {exc}", as_json=args.json)
    except ModelStoreError as exc:
        return fail(PROG, str(exc), as_json=args.json)
    if args.json:
        print(json.dumps(info.as_dict()))
    else:
        print(f"{info.uri} sha256:{info.sha256}")
        if info.card is not None:
            for kind, tensors in (("input", info.card.inputs), ("output", info.card.outputs)):
                for tensor in tensors:
                    print(f"  {kind:6} {tensor.describe()}")
            print(f"  card   sha256:{info.card_sha256}")
    return 0
