"""envbot processes on one machine that push to the same branch take turns (a lock file per target).

Many writers at once (a CI job fanning out over 200 apps) otherwise all push at the same moment and
all but one are rejected; each then fetches, rebases and pushes again, and most of that work is
thrown away. A writer takes a turn at its first push and holds it until its commit lands: if the
branch moved meanwhile it fetches, rebases (or replays, on a real overlap) and pushes once, while
the others wait or prepare their commits.

The push runs with HOLDER_VAR set to the turn's key, so a hook of a local remote that runs envbot
against the same branch (it is a child of that push) does not wait for a turn its parent holds.

The queue is an optimisation only: correctness comes from the remote, which accepts a push only on
the tip the writer saw. Writers on other machines still race through the remote and back off, and
when the lock directory cannot be used safely (not ours, a symlink) envbot pushes without a turn.
ENVBOT_PUSH_QUEUE=off turns it off (the benchmark measures writers on separate machines that way).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

QUEUE_VAR = "ENVBOT_PUSH_QUEUE"
HOLDER_VAR = "ENVBOT_PUSH_TURN"
# A writer waits at most this long for its turn, then races without one: the queue must never be why
# envbot hangs (a turn holder stuck behind a slow remote or a hook).
WAIT_SECONDS = 120.0
# How often a waiting writer looks at the lock: short against a turn (a fetch, a rebase and a push),
# long enough that 200 waiting writers cost little CPU.
POLL_SECONDS = 0.05


def lock_dir() -> Path | None:
    """This user's private lock directory, made if missing; None when it is not safe to use."""
    if not hasattr(os, "getuid"):
        return None
    path = Path(tempfile.gettempdir()) / f"envbot-{os.getuid()}" / "push-turns"
    try:
        for part in (path.parent, path):
            with contextlib.suppress(FileExistsError):
                part.mkdir(mode=0o700)
            info = os.lstat(part)
            # Another user's directory or a symlink planted in a shared /tmp: push without a turn.
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
    except OSError:
        return None
    return path


class PushTurn:
    """The right to push to TARGET's BRANCH among the envbot processes of this machine and user."""

    def __init__(self, target: str, branch: str) -> None:
        self.target = target
        self.branch = branch
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.target}\n{self.branch}".encode()).hexdigest()[:32]

    def holder_env(self) -> dict[str, str]:
        """The environment a push made in this turn passes to its children (a local remote's hooks)."""
        return {HOLDER_VAR: self.key} if self.held else {}

    @staticmethod
    def enabled() -> bool:
        return os.environ.get(QUEUE_VAR, "on").strip().lower() not in {"off", "0", "false", "no"}

    def acquire(self, wait: float = WAIT_SECONDS) -> bool:
        """Wait up to WAIT seconds for the turn; False when the queue is off or unusable, or on timeout."""
        if self._fd is not None:
            return True
        # Inside a push this turn's holder makes (one of its hooks): waiting would wait for ourselves.
        directory = lock_dir() if self.enabled() and os.environ.get(HOLDER_VAR) != self.key else None
        if directory is None:
            return False
        try:
            import fcntl  # POSIX only: elsewhere envbot pushes without a turn
        except ImportError:
            return False
        deadline = time.monotonic() + wait
        try:
            fd = os.open(directory / f"{self.key}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            return False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(fd)
                        return False
                    time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        # Closing the descriptor drops the lock; so does the process exiting, however it ends.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
