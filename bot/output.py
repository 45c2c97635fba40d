"""Console output: errors, JSON, plain tables. Every command prints through these."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from bot.urls import redact_text


class EnvbotError(Exception):
    """A failure explained to the user as `envbot: error: <message>` with a non-zero exit.

    The message is redacted when the error is made: whichever way it is shown (stderr, JSON, a PR),
    no URL in it carries userinfo.
    """

    exit_code = 1

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(redact_text(str(message)), *args)


def print_error(message: str) -> None:
    # Messages quote URLs given on the command line and git's stderr: userinfo (tokens) never prints.
    print(f"envbot: error: {redact_text(message)}", file=sys.stderr)


def info(message: str) -> None:
    """Progress notes go to stderr so stdout stays the command's result (patch, table, JSON)."""
    print(f"envbot: {redact_text(message)}", file=sys.stderr)


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        # One write: json.dump writes every token separately (seconds for a large metrics report).
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    elif text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(cell))) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(str(cell).ljust(w) for w, cell in zip(widths, row, strict=True)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines) + "\n"


def short_digest(digest: str, length: int = 12) -> str:
    """sha256:abcdef... -> abcdef123456 (what people compare by eye)."""
    return digest.split(":", 1)[-1][:length] if digest else "-"
