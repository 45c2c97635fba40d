"""What the store knows about a published model version."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.modelcard import ModelCard
from app.modelstore.errors import ModelStoreError
from app.modelstore.factory import open_backend
from app.modelstore.retry import Backoff
from app.modelstore.uri import parse_uri


@dataclass(frozen=True)
class ModelInfo:
    uri: str
    name: str
    version: str
    sha256: str
    size: int
    card_sha256: str | None = None   # None: published before model cards (still servable, "no card")
    card: ModelCard | None = field(default=None, compare=False)   # set by publish_model

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"uri": self.uri, "name": self.name, "version": self.version,
                                   "sha256": self.sha256, "size": self.size, "card_sha256": self.card_sha256}
        if self.card is not None:
            body["card"] = self.card.as_dict()
        return body


def stat_model(uri: str) -> ModelInfo:
    """The published model at `uri`; ModelNotFound if there is none, ModelStoreError if it has no sha256."""
    location = parse_uri(uri)
    backend = open_backend(location, client_retries=False)
    stored = Backoff(f"{uri}: get properties").call(backend.stat)
    if not stored.sha256:
        raise ModelStoreError(f"{uri}: the object has no sha256 in its metadata (not published with publish-model)")
    return ModelInfo(uri=uri, name=location.name, version=location.version, sha256=stored.sha256, size=stored.size,
                     card_sha256=stored.card_sha256)
