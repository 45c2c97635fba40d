"""Model pins: a model URI -> name, version and sha256 from the model store (app.modelstore)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.output import EnvbotError
from bot.values import ModelPin


def model_source(uri: str) -> str:
    return "s3" if uri.startswith("s3://") else "blob"


def resolve_model(uri: str) -> ModelPin:
    """The pin of the published model at URI; EnvbotError when it does not exist or has no sha256."""
    from app.modelstore import ModelStoreError, stat_model

    try:
        info = stat_model(uri)
    except ModelStoreError as exc:
        raise EnvbotError(f"model {uri}: {exc}") from exc
    return ModelPin(source=model_source(uri), name=info.name, version=info.version, uri=uri, sha256=info.sha256)


def check_model(pin: ModelPin, deep: bool = False) -> str:
    """The pinned model still exists with the pinned sha256 and its card (if any) is intact (DEEP: download
    the model and hash every byte). Returns what was checked, for the report."""
    from app.modelstore import ModelStoreError, fetch_model, stat_model
    from app.modelstore.card import read_card

    try:
        info = stat_model(pin.uri)
        current = info.sha256
        if current != pin.sha256:
            raise EnvbotError(f"model {pin.uri}: the store has sha256 {current}, the pin says {pin.sha256}")
        card = read_card(pin.uri, pin.sha256, info.card_sha256) if info.card_sha256 else None
    except ModelStoreError as exc:
        raise EnvbotError(f"model {pin.uri}: {exc}") from exc
    checked = "card ok" if card else "no card"
    if deep:
        with tempfile.TemporaryDirectory(prefix="envbot-model-") as tmp:
            try:
                fetch_model(pin.uri, pin.sha256, Path(tmp))
            except ModelStoreError as exc:
                raise EnvbotError(f"model {pin.uri}: {exc}") from exc
    return checked
