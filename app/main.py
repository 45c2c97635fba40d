"""`ai-app` / `python -m app`: thin argparse wiring; each verb lives in app/commands/<verb>.py."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from app.cli import fail, tool_version, unexpected_error


class UsageError(Exception):
    """A command line argparse refused: reported like every other error (one line, JSON under --json)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")

VERBS = {
    "serve": "Run the inference server (granian) for the model in MODEL_PATH.",
    "fetch-model": "Download a model from blob storage or S3 and verify its sha256.",
    "check-model": "Check that an ONNX file answers like the original model (or expected outputs).",
    "publish-model": "Upload a model to blob storage or S3 with its sha256.",
    "train": "Train a demo model and export it to ONNX.",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="ai-app", description="The AI app: inference service and model tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {tool_version()}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=_Parser)
    # Only the chosen verb's module is imported, so `serve` never pays for the training stack.
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for verb, summary in VERBS.items():
        subparser = subparsers.add_parser(verb, help=summary, description=summary)
        if verb == chosen:
            module_name = f"app.commands.{verb.replace('-', '_')}"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                parser.error(f"verb {verb!r} is not available in this build ({module_name} is missing)")
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog, as_json = "ai-app", "--json" in argv
    try:
        args = build_parser(argv).parse_args(argv)
        prog, as_json = f"ai-app {args.verb}", getattr(args, "json", False)
        return args.run(args)
    except UsageError as exc:
        return fail(exc.prog, str(exc), kind="bad-input", as_json=as_json)
    except KeyboardInterrupt:
        return fail(prog, "interrupted", kind="interrupted", as_json=as_json)
    except Exception as exc:  # the catch-all: anything a verb did not turn into its own message
        return unexpected_error(prog, exc, as_json=as_json)
