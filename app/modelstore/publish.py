"""Publish a model file as an immutable version in the store."""

from __future__ import annotations

from pathlib import Path

from app.modelstore.backend import Backend
from app.modelstore.digest import file_sha256
from app.modelstore.errors import ModelExists, ModelNotFound, ModelStoreError
from app.modelstore.factory import open_backend
from app.modelstore.info import ModelInfo
from app.modelstore.uri import parse_uri


def publish_model(path: Path, uri: str) -> ModelInfo:
    """Upload `path` to `uri` with its sha256 in the metadata; ModelExists if that version is published."""
    location = parse_uri(uri)
    if not path.is_file():
        raise ModelStoreError(f"{path}: no such model file")
    size = path.stat().st_size
    if size == 0:
        raise ModelStoreError(f"{path}: the model file is empty")
    sha256 = file_sha256(path)
    backend = open_backend(location, client_retries=True)
    try:
        backend.upload(path, sha256)
    except ModelExists:
        existing = _existing_digest(backend)
        same = "the same bytes" if existing == sha256 else f"sha256 {existing or 'unknown'}, not {sha256}"
        raise ModelExists(f"{uri}: version {location.version} of {location.name} is already published "
                          f"({same}); versions are immutable: publish a new version") from None
    except ModelNotFound as exc:
        raise ModelStoreError(f"{exc}: create the container or bucket first") from None
    return ModelInfo(uri=uri, name=location.name, version=location.version, sha256=sha256, size=size)


def _existing_digest(backend: Backend) -> str | None:
    try:
        return backend.stat().sha256
    except ModelStoreError:
        return None
