"""What can go wrong with the model store, as exceptions the CLI turns into one clear line."""

from __future__ import annotations


class ModelStoreError(Exception):
    """A model cannot be published, found or fetched; the message says which URI and why."""


class ModelNotFound(ModelStoreError):
    """No model at that URI (the container, bucket or object does not exist)."""


class ModelExists(ModelStoreError):
    """The version is already published; versions are immutable."""


class DigestMismatch(ModelStoreError):
    """The downloaded bytes are not the ones the caller pinned."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__(f"{uri}: sha256 mismatch: expected {expected}, got {actual}; nothing was written")
        self.uri = uri
        self.expected = expected
        self.actual = actual


class TransientError(ModelStoreError):
    """A network failure or a server error that may go away when retried (reset, timeout, 5xx, throttling)."""
