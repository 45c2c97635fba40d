"""What every `ai-app` verb shares: the tool's version, renamed options, progress, the error line.

Option names follow docs/cli.md (one glossary for ai-app and envbot): `--version` is the tool's
version, `--model-name`/`--model-version` a model's name and version, `--uri` a model URI, and a
positional FILE the model file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, TextIO

DISTRIBUTION = "ai-app-gitops"


def tool_version() -> str:
    """The installed distribution's version (pyproject.toml), or 'unknown' when run from a bare tree."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


class _DeprecatedSpelling(argparse.Action):
    """Stores like the new option, and says once on stderr which spelling replaces it."""

    def __init__(self, option_strings: Sequence[str], dest: str, replacement: str = "",
                 append: bool = False, **kwargs: Any) -> None:
        self.replacement = replacement
        self.append = append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated, use {self.replacement}", file=sys.stderr)
        if self.append:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)


def add_renamed_option(parser: argparse.ArgumentParser, new: str, old: str, **kwargs: Any) -> None:
    """`new` as documented, `old` still accepted (hidden from --help, with a deprecation line)."""
    action = parser.add_argument(new, **kwargs)
    deprecated = {k: v for k, v in kwargs.items() if k in ("type", "choices", "metavar")}
    parser.add_argument(old, dest=action.dest, action=_DeprecatedSpelling, replacement=new,
                        append=kwargs.get("action") == "append", help=argparse.SUPPRESS, **deprecated)


def progress(prog: str, message: str, stream: TextIO | None = None) -> None:
    """A line about a long step, on stderr and only for a person watching a terminal."""
    stream = stream or sys.stderr
    if stream.isatty():
        print(f"{prog}: {message}", file=stream, flush=True)


# kind -> exit status: what a caller (CI) branches on; docs/cli.md lists them, app/schemas/error.json names them.
EXIT_CODES: dict[str, int] = {
    "failed": 1,        # refused or failed: a model that does not load or match, a version that exists, a store
    "bad-input": 2,     # bad usage or input: fix the command line or the file it names
    "internal": 70,     # EX_SOFTWARE: an error no verb anticipated (a bug)
    "interrupted": 130,
}


def fail(prog: str, message: str, *, kind: str = "failed", as_json: bool = False, **details: Any) -> int:
    """Every error of every verb: one line on stderr and, under --json, one JSON error object on stdout
    ({error, kind, exit_code, ...DETAILS}); returns the kind's exit status."""
    message = " ".join(str(message).split())   # one line, whatever the exception carried
    code = EXIT_CODES[kind]
    if as_json:
        import json

        print(json.dumps({"error": message, "kind": kind, "exit_code": code, **details}))
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def unexpected_error(prog: str, exc: BaseException, *, as_json: bool) -> int:
    """One line for an error no verb anticipated (and the JSON error object under --json)."""
    return fail(prog, f"unexpected error: {type(exc).__name__}: {exc}", kind="internal", as_json=as_json,
                type=type(exc).__name__)
