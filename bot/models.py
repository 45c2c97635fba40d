"""Model pins: a model URI -> name, version and sha256 from the model store (app.modelstore)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.errors import BadInput, EnvbotError, Unreachable
from bot.output import progress
from bot.values import ModelPin


def model_source(uri: str) -> str:
    return "s3" if uri.startswith("s3://") else "blob"


def resolve_model(uri: str) -> ModelPin:
    """The pin of the published model at URI; EnvbotError when it does not exist or its sha256 metadata is
    missing or not a sha256 (64 hex characters): a pin must never carry a digest nothing can verify."""
    from app.modelstore import ModelNotFound, ModelStoreError, stat_model
    from app.modelstore.digest import normalize_sha256

    progress(f"looking up model {uri} in the model store")
    try:
        info = stat_model(uri)
    except ModelNotFound as exc:
        raise BadInput(f"model {uri}: {exc}") from exc
    except ModelStoreError as exc:
        kind = BadInput if "sha256" in str(exc) else Unreachable   # no sha256 metadata vs store unreachable
        raise kind(f"model {uri}: {exc}") from exc
    try:
        sha256 = normalize_sha256(info.sha256, "its sha256 metadata")
    except ValueError as exc:
        raise BadInput(f"model {uri}: {exc}; republish it with publish-model") from exc
    return ModelPin(source=model_source(uri), name=info.name, version=info.version, uri=uri, sha256=sha256)


def check_model(pin: ModelPin, deep: bool = False) -> str:
    """The pinned model still exists with the pinned sha256 and its card (if any) is intact (DEEP: download
    the model and hash every byte). Returns what was checked, for the report."""
    from app.modelstore import ModelStoreError, fetch_model, stat_model
    from app.modelstore.card import read_card

    # resolve_model refuses metadata that is not a sha256: "xyz" must not verify against a pin of "xyz".
    current = resolve_model(pin.uri).sha256
    if current != pin.sha256:
        raise EnvbotError(f"model {pin.uri}: the store has sha256 {current}, the pin says {pin.sha256}")
    try:
        info = stat_model(pin.uri)
        card = read_card(pin.uri, pin.sha256, info.card_sha256) if info.card_sha256 else None
    except ModelStoreError as exc:
        raise EnvbotError(f"model {pin.uri}: {exc}") from exc
    checked = "card ok" if card else "no card"
    if deep:
        with tempfile.TemporaryDirectory(prefix="envbot-model-") as tmp:
            progress(f"downloading model {pin.uri} to check its sha256")
            try:
                fetch_model(pin.uri, pin.sha256, Path(tmp))
            except ModelStoreError as exc:
                raise EnvbotError(f"model {pin.uri}: {exc}") from exc
    return checked
