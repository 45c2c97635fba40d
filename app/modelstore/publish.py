"""Publish a model file as an immutable version in the store."""

from __future__ import annotations

from pathlib import Path

from app.modelcard import ModelCardError, build_card
from app.modelstore.backend import Backend
from app.modelstore.card import upload_card
from app.modelstore.digest import file_sha256
from app.modelstore.errors import ModelExists, ModelNotFound, ModelStoreError
from app.modelstore.factory import open_backend
from app.modelstore.info import ModelInfo
from app.modelstore.uri import parse_uri


def publish_model(path: Path, uri: str, *, metrics_file: Path | None = None, source: str | None = None,
                  with_card: bool = True) -> ModelInfo:
    """Upload `path` to `uri` with its sha256 in the metadata, its model card beside it; ModelExists if that
    version is published. The card (signature, opset, producer, METRICS_FILE, SOURCE) is made and checked
    before anything is uploaded. `with_card=False` stores the bytes as models were stored before cards
    (for tests and benchmarks of the transfer itself, whose payloads are not ONNX)."""
    location = parse_uri(uri)
    if not path.is_file():
        raise ModelStoreError(f"{path}: no such model file")
    size = path.stat().st_size
    if size == 0:
        raise ModelStoreError(f"{path}: the model file is empty")
    sha256 = file_sha256(path)
    card = None
    if with_card:
        try:
            card = build_card(path, name=location.name, version=location.version, sha256=sha256,
                              metrics_file=metrics_file, source=source)
        except ModelCardError as exc:
            raise ModelStoreError(str(exc)) from None
    backend = open_backend(location, client_retries=True)
    card_sha256 = ""
    try:
        if card is not None and _existing_digest(backend) is None:
            card_sha256 = upload_card(location, card)   # the card goes first; the model names it
        backend.upload(path, sha256, {"card_sha256": card_sha256} if card_sha256 else None)
    except ModelExists:
        existing = _existing_digest(backend)
        same = "the same bytes" if existing == sha256 else f"sha256 {existing or 'unknown'}, not {sha256}"
        raise ModelExists(f"{uri}: version {location.version} of {location.name} is already published "
                          f"({same}); versions are immutable: publish a new version") from None
    except ModelNotFound as exc:
        raise ModelStoreError(f"{exc}: create the container or bucket first") from None
    return ModelInfo(uri=uri, name=location.name, version=location.version, sha256=sha256, size=size,
                     card_sha256=card_sha256 or None, card=card)


def _existing_digest(backend: Backend) -> str | None:
    try:
        return backend.stat().sha256
    except ModelStoreError:
        return None
