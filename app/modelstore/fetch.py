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

from app.modelcard import CARD_FILE
from app.modelstore.backend import Backend
from app.modelstore.card import read_card
from app.modelstore.digest import file_sha256, normalize_sha256
from app.modelstore.errors import DigestMismatch, ModelStoreError, TransientError
from app.modelstore.factory import open_backend
from app.modelstore.retry import Backoff
from app.modelstore.uri import MODEL_FILE, parse_object_uri, parse_uri

log = logging.getLogger("app.modelstore")
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


def _remove_stale_partials(dest_dir: Path, name: str = MODEL_FILE) -> None:
    # A fetch killed mid-way (pod evicted, init container restarted) leaves its temp file behind.
    for stale in dest_dir.glob(f".{name}.*{_PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _download(uri: str, backend: Backend, size: int, expected: str, target: Path, retry: Backoff,
              bar: Progress | None) -> int:
    """Stream the object into a temp file beside TARGET, resuming after transient failures; rename it
    to TARGET only when its sha256 is EXPECTED. Returns the bytes received."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_PARTIAL_SUFFIX, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb", buffering=0) as out:
            while received < size:
                try:
                    for chunk in backend.read(received):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        retry.reset()
                        if bar:
                            bar.update(received)
                    if received < size:
                        raise TransientError(f"{uri}: stream ended at byte {received} of {size}")
                except TransientError as error:
                    retry.wait(error)
            if received != size:
                raise ModelStoreError(f"{uri}: got {received} bytes, expected {size} (object changed?)")
            os.fsync(out.fileno())
        if bar:
            bar.finish(received)
        actual = digest.hexdigest()
        if actual != expected:
            raise DigestMismatch(uri, expected, actual)
        tmp.chmod(0o644)  # mkstemp makes it 0600; the serving container may run as another user
        os.replace(tmp, target)
        _fsync_dir(target.parent)  # the rename itself survives a crash
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return received


def fetch_object(uri: str, sha256: str, target: Path, *, attempts: int = 6, backoff: float = 0.5) -> Path:
    """Make TARGET hold the stored object at URI (any file of a version folder, e.g. an evaluation data
    set) with digest SHA256: verified the same way as a model, reused when already there."""
    location = parse_object_uri(uri)
    try:
        expected = normalize_sha256(sha256, "sha256")
    except ValueError as exc:
        raise ModelStoreError(f"{uri}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and file_sha256(target) == expected:
        return target
    _remove_stale_partials(target.parent, target.name)
    backend = open_backend(location, client_retries=False)
    retry = Backoff(f"{uri}: download", attempts=attempts, base=backoff)
    stored = retry.call(backend.stat)
    if stored.sha256 and stored.sha256 != expected:
        raise ModelStoreError(f"{uri}: the store records sha256 {stored.sha256} but {expected} was pinned")
    _download(uri, backend, stored.size, expected, target, retry, None)
    return target


def _fetch_card(uri: str, model_sha256: str, card_sha256: str | None, dest_dir: Path, retry: Backoff) -> None:
    """Write the model's verified card to DEST/model.card.json (the server exposes it); remove a stale one
    when the model has no card."""
    target = dest_dir / CARD_FILE
    found = read_card(uri, model_sha256, card_sha256, attempts=retry.attempts,
                      backoff=retry.base) if card_sha256 else None
    if found is None:
        target.unlink(missing_ok=True)
        return
    fd, tmp_name = tempfile.mkstemp(prefix=f".{CARD_FILE}.", suffix=_PARTIAL_SUFFIX, dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(found[1])
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


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
        # No store round trip (an init container restarted without network still starts): a fresh
        # fetch writes the verified card before the model, so a card that belongs here is already here.
        log.info("model already present", extra={"path": str(target), "sha256": expected})
        return target
    _remove_stale_partials(dest_dir)

    backend = open_backend(location, client_retries=False)
    retry = Backoff(f"{uri}: download", attempts=attempts, base=backoff)
    stored = retry.call(backend.stat)
    if stored.sha256 and stored.sha256 != expected:
        raise ModelStoreError(f"{uri}: the store records sha256 {stored.sha256} but {expected} was pinned; "
                              "refusing to download (wrong version pinned?)")
    # The card is checked before the model is downloaded: a tampered card fails fast and leaves nothing.
    _fetch_card(uri, expected, stored.card_sha256, dest_dir, retry)

    bar = Progress(stored.size, sys.stderr) if progress else None
    received = _download(uri, backend, stored.size, expected, target, retry, bar)
    log.info("model fetched", extra={"path": str(target), "sha256": expected, "bytes": received})
    return target
