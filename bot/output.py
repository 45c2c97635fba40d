"""Console output: errors, JSON, plain tables. Every command prints through these."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from app.cli import progress as terminal_progress  # one rule for both tools: stderr, a terminal only
from bot.errors import EnvbotError
from bot.urls import redact_text

__all__ = ["EnvbotError", "emit", "emit_error", "info", "print_error", "progress", "short_digest", "table"]


def print_error(message: str) -> None:
    """One line per error: a message spanning lines (a list of gates) is joined with '; '.

    Messages quote URLs given on the command line and git's stderr: userinfo (tokens) never prints.
    """
    lines = [line.strip() for line in redact_text(message).splitlines() if line.strip()]
    print(f"envbot: error: {'; '.join(lines)}", file=sys.stderr)


def emit_error(error: EnvbotError) -> None:
    """The JSON error object (--json) on stdout: {error, kind, exit_code, ...details}."""
    json.dump(error.as_json(), sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def info(message: str) -> None:
    """Progress notes go to stderr so stdout stays the command's result (patch, table, JSON)."""
    print(f"envbot: {redact_text(message)}", file=sys.stderr)


def progress(message: str) -> None:
    """A note before a long step (clone, registry or model-store lookup, chart pull, helm render), on
    stderr and only for a person watching a terminal: logs, pipes and CI output stay the result alone."""
    terminal_progress("envbot", f"{redact_text(message)} ...")


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
