"""Fetch a pinned model version into a directory: streamed, hashed on the way, atomically renamed.

What an init container and CI run. The pinned sha256 is the authority: the bytes land as
DEST/model.onnx only when their digest matches it, otherwise nothing is left behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from app.modelstore.digest import file_sha256, normalize_sha256
from app.modelstore.errors import DigestMismatch, ModelStoreError, TransientError
from app.modelstore.factory import open_backend
from app.modelstore.retry import Backoff
from app.modelstore.uri import MODEL_FILE, parse_uri

log = logging.getLogger("app.modelstore")
_PARTIAL_PREFIX = f".{MODEL_FILE}."
_PARTIAL_SUFFIX = ".partial"


class Progress:
    """One self-overwriting status line (for a terminal), redrawn at most every 0.2 s."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.2:
            return
        self._drawn = now
        rate = done / max(now - self.started, 1e-6)
        percent = 100 * done / self.total if self.total else 100
        self.stream.write(f"\r{_mib(done)} / {_mib(self.total)} MiB ({percent:3.0f}%) {_mib(rate)} MiB/s ")
        self.stream.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        self.stream.write("\n")
        self.stream.flush()


def _mib(n: float) -> str:
    return f"{n / 1048576:.1f}"


def _remove_stale_partials(dest_dir: Path) -> None:
    # A fetch killed mid-way (pod evicted, init container restarted) leaves its temp file behind.
    for stale in dest_dir.glob(f"{_PARTIAL_PREFIX}*{_PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fetch_model(uri: str, sha256: str, dest_dir: Path, progress: bool = False, *,
                attempts: int = 6, backoff: float = 0.5) -> Path:
    """Make `dest_dir/model.onnx` hold the model at `uri` with digest `sha256`; returns that path.

    Does nothing when the file is already there with that digest. Transient failures (resets,
    timeouts, 5xx) are retried with backoff, resuming from the last byte received; `attempts`
    counts consecutive failures without progress.
    """
    location = parse_uri(uri)
    try:
        expected = normalize_sha256(sha256, "--sha256")
    except ValueError as exc:
        raise ModelStoreError(str(exc)) from None
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / MODEL_FILE
    if target.is_file() and file_sha256(target) == expected:
        log.info("model already present", extra={"path": str(target), "sha256": expected})
        return target
    _remove_stale_partials(dest_dir)

    backend = open_backend(location, client_retries=False)
    retry = Backoff(f"{uri}: download", attempts=attempts, base=backoff)
    stored = retry.call(backend.stat)
    if stored.sha256 and stored.sha256 != expected:
        raise ModelStoreError(f"{uri}: the store records sha256 {stored.sha256} but {expected} was pinned; "
                              "refusing to download (wrong version pinned?)")

    bar = Progress(stored.size, sys.stderr) if progress else None
    fd, tmp_name = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, suffix=_PARTIAL_SUFFIX, dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb", buffering=0) as out:
            while received < stored.size:
                try:
                    for chunk in backend.read(received):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        retry.reset()
                        if bar:
                            bar.update(received)
                    if received < stored.size:
                        raise TransientError(f"{uri}: stream ended at byte {received} of {stored.size}")
                except TransientError as error:
                    retry.wait(error)
            if received != stored.size:
                raise ModelStoreError(f"{uri}: got {received} bytes, expected {stored.size} (object changed?)")
            os.fsync(out.fileno())
        if bar:
            bar.finish(received)
        actual = digest.hexdigest()
        if actual != expected:
            raise DigestMismatch(uri, expected, actual)
        tmp.chmod(0o644)  # mkstemp makes it 0600; the serving container may run as another user
        os.replace(tmp, target)
        _fsync_dir(dest_dir)  # the rename itself survives a crash
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("model fetched", extra={"path": str(target), "sha256": expected, "bytes": received})
    return target
