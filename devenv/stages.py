"""A run made of named stages: each one is timed, announced, and on failure named with its reason."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BOLD, DIM, RED, GREEN, RESET = "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[0m"


def _style(code: str, text: str) -> str:
    # Colour only for a person at a terminal who has not asked for none (https://no-color.org).
    coloured = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return f"{code}{text}{RESET}" if coloured else text


class StageFailed(RuntimeError):
    """Raised by a stage (or a command it ran) with a message that says what broke."""


@dataclass
class StageTiming:
    name: str
    seconds: float


@dataclass
class StageRunner:
    """Runs stages in order, printing a header for each and a timing table at the end."""

    timings: list[StageTiming] = field(default_factory=list)

    def run(self, stages: Sequence[tuple[str, Callable[[], None]]]) -> None:
        total = len(stages)
        for index, (name, action) in enumerate(stages, start=1):
            print(_style(BOLD, f"\n==> [{index}/{total}] {name}"), flush=True)
            start = time.monotonic()
            try:
                action()
            except Exception as exc:
                reason = str(exc) if isinstance(exc, StageFailed) else f"{type(exc).__name__}: {exc}"
                print(_style(RED, f"\nFAILED at stage {index}/{total} '{name}':\n{reason}"), file=sys.stderr)
                raise StageFailed(reason) from exc
            seconds = time.monotonic() - start
            self.timings.append(StageTiming(name, seconds))
            print(_style(GREEN, f"    done in {seconds:.1f}s"), flush=True)

    def timing_table(self) -> str:
        width = max((len(t.name) for t in self.timings), default=10)
        lines = [f"{'stage'.ljust(width)}  seconds", f"{'-' * width}  -------"]
        lines += [f"{t.name.ljust(width)}  {t.seconds:7.1f}" for t in self.timings]
        return "\n".join(lines)


def run_command(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    show: bool = True,
) -> str:
    """Run a command, echoing it; its stdout is shown and returned. A failure raises StageFailed
    with the command and its stderr, so the stage header above names where it broke."""
    args = [str(a) for a in argv]
    if show:
        print(_style(DIM, f"    $ {shlex.join(args)}"), flush=True)
    result = subprocess.run(args, env=dict(env) if env is not None else None, cwd=cwd,
                            capture_output=True, text=True)
    if show and result.stdout.strip():
        print("\n".join(f"    {line}" for line in result.stdout.rstrip().splitlines()), flush=True)
    if result.returncode != 0:
        raise StageFailed(
            f"command failed with exit {result.returncode}: {shlex.join(args)}\n{result.stderr.strip()}"
        )
    return result.stdout
