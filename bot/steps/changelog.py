"""Step: the source commits between the running image and the new one (from their revision labels)."""

from __future__ import annotations

from bot.changelog import changelog_markdown
from bot.output import EnvbotError
from bot.registry import REVISION_LABEL, SOURCE_LABEL, RegistryClient, parse_image_ref
from bot.steps import Outcome, Promotion


def _labels(registry: RegistryClient, reference: str) -> dict[str, str]:
    try:
        return registry.resolve(parse_image_ref(reference)).labels
    except EnvbotError:
        return {}


def run(promotion: Promotion, outcome: Outcome, registry: RegistryClient, source_repo: str | None) -> None:
    old, new = outcome.old_pin, outcome.new_pin
    if not outcome.patches or new is None or not new.image.digest:
        return
    if old is not None and old.image.digest == new.image.digest:
        outcome.changelog = "Same image; no source changes.\n"
        return
    new_labels = _labels(registry, new.image.ref)
    old_labels = _labels(registry, old.image.ref) if old is not None and old.image.digest else {}
    source = source_repo or new_labels.get(SOURCE_LABEL) or promotion.app.source
    outcome.changelog = changelog_markdown(source, old_labels.get(REVISION_LABEL), new_labels.get(REVISION_LABEL))
