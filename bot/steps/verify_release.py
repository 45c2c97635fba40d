"""The check that a release pin can run: its image digest is in the registry, its model in the store with
the pinned sha256 (blob metadata, no download) and its chart (if pinned) in the registry. Used before a
rollback or promotion lands; verify checks the same image and model."""

from __future__ import annotations

from collections.abc import Callable

from bot.errors import Conflict, EnvbotError
from bot.models import check_model
from bot.registry import ImageRef, RegistryClient, parse_image_ref
from bot.values import ReleasePin


def check_image(registry: RegistryClient, pin: ReleasePin) -> None:
    if not pin.image.digest:
        raise EnvbotError("the pin has no image digest")
    ref = parse_image_ref(pin.image.ref)
    registry.digest(ImageRef(ref.registry, ref.repository, digest=pin.image.digest))


def release_check(registry: RegistryClient) -> Callable[[ReleasePin], None]:
    def check(pin: ReleasePin) -> None:
        try:
            check_image(registry, pin)
            if pin.model.uri:
                check_model(pin.model)
            if pin.chart.digest:
                from bot.charts import resolve_chart

                resolve_chart(pin.chart, registry, "the chart pin")
        except EnvbotError as exc:
            if exc.kind == "unreachable":
                raise
            raise Conflict(f"the release to land is not available: {exc}") from exc
    return check
