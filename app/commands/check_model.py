"""`check-model`: does the ONNX file answer like the original model? Run before publish-model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli import fail
from app.modelcheck import DEFAULT_ATOL, DEFAULT_ROWS, DEFAULT_RTOL, CheckError, CheckResult, check_model

PROG = "ai-app check-model"
JSON_SCHEMA = "check-model"   # app/schemas/check-model.json: the shape of --json output (docs/cli.md)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the ONNX model file")
    reference = parser.add_mutually_exclusive_group(required=True)
    reference.add_argument("--reference", type=Path, metavar="FILE",
                           help="the original model: a pickle/joblib of a scikit-learn, XGBoost or LightGBM "
                                "estimator (.pkl, .pickle, .joblib) or a TorchScript file (.pt, .pth)")
    reference.add_argument("--samples", type=Path, metavar="FILE",
                           help="inputs with the outputs they must give: .npz with one array per input and "
                                'output name, or .json {"inputs": {name: values}, "outputs": {name: values}}')
    parser.add_argument("--inputs", type=Path, metavar="FILE",
                        help="with --reference: the inputs to run (.npz/.json by input name); "
                             f"default: {DEFAULT_ROWS} rows of standard-normal values")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"rows of generated inputs when --inputs is not given (default {DEFAULT_ROWS})")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help=f"relative tolerance (default {DEFAULT_RTOL})")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"absolute tolerance (default {DEFAULT_ATOL})")
    parser.add_argument("--min-agreement", type=float, default=1.0, metavar="SHARE",
                        help="share of rows that must agree per output, 0..1 (default 1: every row)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def describe(result: CheckResult) -> str:
    lines = [f"{result.model} vs {result.reference} (rtol={result.rtol:g}, atol={result.atol:g})"]
    for output in result.outputs:
        difference = ("exact match required" if output.max_abs_diff is None
                      else f"largest difference {output.max_abs_diff:.3g}")
        verdict = "ok" if output.passed else "MISMATCH"
        lines.append(f"  {output.name:<20} {verdict:<8} {output.agreeing_rows}/{output.rows} rows agree "
                     f"({output.agreement:.1%}), {difference}")
    lines.extend(f"  {name:<20} skipped  (the reference gives no expected values)" for name in result.skipped)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.rows <= 0:
        return fail(PROG, f"--rows must be positive, not {args.rows}", kind="bad-input", as_json=args.json)
    try:
        result = check_model(args.file, reference=args.reference, samples=args.samples, inputs=args.inputs,
                             rows=args.rows, rtol=args.rtol, atol=args.atol, min_agreement=args.min_agreement)
    except CheckError as exc:
        return fail(PROG, str(exc), kind="bad-input", as_json=args.json)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(describe(result))
    if not result.passed:
        failing = ", ".join(o.name for o in result.outputs if not o.passed)
        print(f"{PROG}: {args.file} does not answer like {result.reference}: {failing} "
              "beyond the tolerance; do not publish it", file=sys.stderr)
        return 1
    return 0
