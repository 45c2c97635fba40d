"""`train`: train demo models on bundled data and write them as ONNX in the store's layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli import add_renamed_option, fail

PROG = "ai-app train"
JSON_SCHEMA = "train"   # app/schemas/train.json: the shape of --json output (docs/cli.md)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The model table lives with the training code; importing it here would pull in nothing heavy.
    from app.training import DEFAULT_BIG_SIZE_MB, MODELS

    choices = "; ".join(f"{name}: {description}" for name, (_, description) in MODELS.items())
    parser.add_argument("--out", type=Path, required=True, help="directory; writes <out>/<name>/<version>/model.onnx")
    add_renamed_option(parser, "--model-name", "--model", dest="model", action="append", choices=list(MODELS),
                       metavar="NAME",
                       help=f"model to train, repeatable (default: iris-logreg and iris-forest). {choices}")
    add_renamed_option(parser, "--model-version", "--version", dest="version", default="1",
                       help="version directory to write (default: 1)")
    parser.add_argument("--size-mb", type=int, help=f"size of iris-big in MiB (default: {DEFAULT_BIG_SIZE_MB})")
    parser.add_argument("--joblib", action="store_true",
                        help="also save the scikit-learn estimator as model.joblib (benchmark peers only)")
    parser.add_argument("--input-name", default="input",
                        help="name of the model's input tensor (default: input; changing it breaks clients)")
    parser.add_argument("--label-noise", type=float, default=0.0, metavar="SHARE",
                        help="replace this share (0..1) of the training labels with random classes: a worse "
                             "model, for demonstrating the release gates (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model")


def run(args: argparse.Namespace) -> int:
    try:
        from app.training import train_model
    except ModuleNotFoundError as exc:
        return fail(PROG, f"{exc.name} is missing: install the train extra (pip install 'ai-app-gitops[train]')",
                    kind="bad-input", as_json=args.json)
    for name in args.model or ["iris-logreg", "iris-forest"]:
        try:
            model = train_model(name, args.out, args.version, size_mb=args.size_mb, save_joblib=args.joblib,
                                input_name=args.input_name, label_noise=args.label_noise)
        except ValueError as exc:
            return fail(PROG, str(exc), kind="bad-input", as_json=args.json)
        if args.json:
            print(json.dumps({"name": model.name, "version": model.version, "path": str(model.path),
                              "sha256": model.sha256, "size": model.path.stat().st_size}))
        else:
            print(f"{model.path} sha256:{model.sha256}")
    return 0
