"""envbot's errors: each one is explained to the user in one line and has a kind with its own exit code.

The kind is what CI branches on (`--json` prints it with the message): retry later (gate-refused,
conflict, unreachable), fix the input (bad-input), or ask whoever guards the branch (push-refused).
docs/envbot-json.md documents the kinds and exit codes; a test checks that it lists every one.
"""

from __future__ import annotations

from typing import Any

from bot.urls import redact_text

# kind -> exit code. 1 is what Python itself exits with on an unexpected exception: `internal`.
EXIT_CODES: dict[str, int] = {
    "internal": 1,
    "bad-input": 2,
    "conflict": 3,
    "gate-refused": 4,
    "push-refused": 5,
    "unreachable": 6,
    "verify-failed": 7,
    "interrupted": 130,
}


class EnvbotError(Exception):
    """A failure explained to the user as `envbot: error: <message>` with the kind's exit code.

    The message is redacted when the error is made: whichever way it is shown (stderr, JSON, a PR),
    no URL in it carries userinfo.
    """

    kind = "bad-input"

    def __init__(self, message: object = "", **details: Any) -> None:
        super().__init__(redact_text(str(message)))
        # Extra fields of the JSON error object (e.g. retry_after for gates); JSON-serialisable values.
        self.details = details

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    def as_json(self) -> dict[str, Any]:
        return {"error": str(self), "kind": self.kind, "exit_code": self.exit_code, **self.details}


class BadInput(EnvbotError):
    """The arguments, a values file or promotion.yaml are wrong: fix them; retrying will not help."""

    kind = "bad-input"


class Conflict(EnvbotError):
    """The repository or an input changed under envbot (a revert conflicts, a tag moved): look, then rerun."""

    kind = "conflict"


class GateRefused(EnvbotError):
    """A promotion gate (soak, health, freeze) refuses now; `retry_after` says when it can pass, if known."""

    kind = "gate-refused"


class PushRefused(EnvbotError):
    """The server refused the push (hook, branch protection) although the branch did not move: no retry."""

    kind = "push-refused"


class Unreachable(EnvbotError):
    """A remote (git, registry, model store, forge, Argo CD) could not be reached or answered an error."""

    kind = "unreachable"


class VerifyFailed(EnvbotError):
    """`envbot verify` found pins whose image or model is missing or does not match."""

    kind = "verify-failed"


def internal_error(exc: BaseException) -> EnvbotError:
    """An unexpected exception as one line (type and message), never a traceback."""
    error = EnvbotError(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        .rstrip(": "))
    error.kind = "internal"
    return error
