"""Model cards in the store: `<name>/<version>/model.card.json`, its digest in the model's metadata.

The card is uploaded first and the model last, with `card_sha256` in the model's metadata, both with
create-only writes: a published model either has no card (published before cards existed) or a card
whose bytes hash to what the model records, describing exactly the pinned model bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from app.modelcard import CARD_FILE, MAX_CARD_BYTES, ModelCard, ModelCardError, parse_card
from app.modelstore.backend import Backend
from app.modelstore.errors import ModelExists, ModelStoreError
from app.modelstore.factory import open_backend
from app.modelstore.retry import Backoff
from app.modelstore.uri import ModelUri, parse_uri


class ModelCardInvalid(ModelStoreError):
    """The stored card is missing, tampered with or does not describe the pinned model."""


def upload_card(location: ModelUri, card: ModelCard) -> str:
    """Store CARD beside the model (create-only); returns its sha256. An identical card already there is fine."""
    data = card.to_bytes()
    digest = hashlib.sha256(data).hexdigest()
    card_location = location.beside(CARD_FILE)
    backend = open_backend(card_location, client_retries=True)
    fd, name = tempfile.mkstemp(prefix=".model-card-", suffix=".json")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        backend.upload(tmp, digest)
    except ModelExists:
        # A publish that stopped between the card and the model leaves the card: the same card may stay.
        existing = _read_bytes(backend, card_location.uri)
        if hashlib.sha256(existing).hexdigest() != digest:
            raise ModelExists(f"{card_location.uri}: a different model card is already stored for this version; "
                              "versions are immutable: publish a new version") from None
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def _read_bytes(backend: Backend, uri: str, attempts: int = 6, backoff: float = 0.5) -> bytes:
    stored = Backoff(f"{uri}: get properties", attempts=attempts, base=backoff).call(backend.stat)
    if stored.size > MAX_CARD_BYTES:
        raise ModelCardInvalid(f"{uri}: {stored.size} bytes is too large for a model card")
    data = b"".join(Backoff(f"{uri}: download", attempts=attempts, base=backoff).call(lambda: list(backend.read(0))))
    if len(data) > MAX_CARD_BYTES:
        raise ModelCardInvalid(f"{uri}: more than {MAX_CARD_BYTES} bytes is too large for a model card")
    return data


def read_card(uri: str, model_sha256: str, card_sha256: str | None = None, *, attempts: int = 6,
              backoff: float = 0.5) -> tuple[ModelCard, bytes] | None:
    """The verified card of the model at URI whose pinned digest is MODEL_SHA256; None when it has no card.

    CARD_SHA256 is the digest the model's metadata records (looked up when not given). Raises
    ModelCardInvalid when the card's bytes do not hash to it, or it describes other bytes or another version.
    """
    location = parse_uri(uri)
    if card_sha256 is None:
        stored = Backoff(f"{uri}: get properties", attempts=attempts, base=backoff).call(
            open_backend(location, client_retries=False).stat)
        card_sha256 = stored.card_sha256
    if not card_sha256:
        return None
    card_sha256 = card_sha256.lower()
    if len(card_sha256) != 64 or any(c not in "0123456789abcdef" for c in card_sha256):
        raise ModelCardInvalid(f"{uri}: the model's card_sha256 metadata is not a sha256: {card_sha256[:80]!r}")
    card_location = location.beside(CARD_FILE)
    data = _read_bytes(open_backend(card_location, client_retries=False), card_location.uri, attempts, backoff)
    actual = hashlib.sha256(data).hexdigest()
    if actual != card_sha256:
        raise ModelCardInvalid(f"{card_location.uri}: the card was changed after publishing (sha256 {actual}, "
                               f"the model records {card_sha256})")
    try:
        card = parse_card(data, card_location.uri)
    except ModelCardError as exc:
        raise ModelCardInvalid(str(exc)) from None
    if card.sha256 != model_sha256.lower().removeprefix("sha256:"):
        raise ModelCardInvalid(f"{card_location.uri}: the card describes sha256 {card.sha256}, the pinned model "
                               f"is {model_sha256}")
    if (card.name, card.version) != (location.name, location.version):
        raise ModelCardInvalid(f"{card_location.uri}: the card is for {card.name} {card.version}")
    return card, data
