"""envbot: thin argparse wiring; each verb lives in bot/commands/<verb>.py.

Every failure ends here as one line on stderr (`envbot: error: ...`), the kind's exit code
(bot/errors.py) and, under --json, a JSON error object on stdout; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from bot.commands import VERBS, add_common_arguments
from bot.errors import BadInput, EnvbotError, internal_error
from bot.output import emit_error, print_error

PACKAGE = "ai-app-gitops"
# A reader that closed the pipe (`envbot status | head`): what a shell reports for SIGPIPE.
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """Usage errors become BadInput, so they get the same one line (and JSON object) as every error."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{self.prog}: {message}")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="envbot", description="Pin image and model digests in a GitOps "
                     "environments repo and promote them dev -> staging -> prod.")
    parser.add_argument("--version", action="version", version=f"envbot {version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for verb in VERBS:
        module = importlib.import_module(f"bot.commands.{verb}")
        sub = verbs.add_parser(verb, help=(module.__doc__ or "").strip().splitlines()[0],
                               description=(module.__doc__ or "").strip())
        add_common_arguments(sub, writes=getattr(module, "WRITES", False), one_app=getattr(module, "ONE_APP", True))
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def _fail(error: EnvbotError, as_json: bool) -> int:
    print_error(str(error))
    if as_json:
        emit_error(error)
    return error.exit_code


def _quiet_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so the interpreter's final flush cannot fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except EnvbotError as exc:
        return _fail(exc, as_json)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        error = EnvbotError("interrupted; nothing was pushed")
        error.kind = "interrupted"
        return _fail(error, as_json)
    except Exception as exc:   # the catch-all: one line, never a traceback
        return _fail(internal_error(exc), as_json)


def entry() -> NoReturn:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


if __name__ == "__main__":
    entry()
