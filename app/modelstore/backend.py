"""What the model store needs from a storage service: the interface every backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Connection and read timeouts (seconds): generous for a slow link, short enough that a dead
# connection is retried rather than hanging an init container forever.
CONNECT_TIMEOUT = 20
READ_TIMEOUT = 60


@dataclass(frozen=True)
class StoredObject:
    size: int
    sha256: str | None  # the digest recorded in the object's metadata at publish time, if any
    card_sha256: str | None = None  # the model card's digest, recorded on the model at publish time


class Backend(Protocol):
    """One model object in one store. Methods raise ModelNotFound, ModelExists, TransientError or ModelStoreError."""

    def stat(self) -> StoredObject: ...

    def upload(self, path: Path, sha256: str, metadata: dict[str, str] | None = None) -> None:
        """Create the object with `sha256` (and METADATA) in its metadata; ModelExists if it exists (atomically)."""

    def read(self, offset: int) -> Iterator[bytes]:
        """The object's bytes from `offset` to the end, in chunks, streamed."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Names of the objects in the model's container or bucket that start with `prefix`."""
