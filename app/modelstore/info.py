"""What the store knows about a published model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def stat_model(uri: str) -> ModelInfo:
    """The published model at `uri`; ModelNotFound if there is none, ModelStoreError if it has no sha256."""
    location = parse_uri(uri)
    backend = open_backend(location, client_retries=False)
    stored = Backoff(f"{uri}: get properties").call(backend.stat)
    if not stored.sha256:
        raise ModelStoreError(f"{uri}: the object has no sha256 in its metadata (not published with publish-model)")
    return ModelInfo(uri=uri, name=location.name, version=location.version, sha256=stored.sha256, size=stored.size)
