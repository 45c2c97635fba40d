"""envbot: thin argparse wiring; each verb lives in bot/commands/<verb>.py."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bot.commands import VERBS, add_common_arguments
from bot.output import EnvbotError, print_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envbot", description="Pin image and model digests in a GitOps "
                                     "environments repo and promote them dev -> staging -> prod.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        module = importlib.import_module(f"bot.commands.{verb}")
        sub = verbs.add_parser(verb, help=(module.__doc__ or "").strip().splitlines()[0],
                               description=(module.__doc__ or "").strip())
        add_common_arguments(sub)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except EnvbotError as exc:
        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print_error("interrupted; nothing was pushed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
