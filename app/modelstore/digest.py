"""sha256 of model files; the digest is what deployments pin."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

# 1 MiB reads: large enough that hashlib releases the GIL and runs at memory speed.
READ_BYTES = 1024 * 1024
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(READ_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_sha256(value: str, where: str = "sha256") -> str:
    """Lower-case hex digest; accepts an optional "sha256:" prefix. ValueError names `where`."""
    digest = value.strip().lower().removeprefix("sha256:")
    if not _SHA256_HEX.match(digest):
        raise ValueError(f"{where}: expected 64 hexadecimal characters, got {value!r}")
    return digest
