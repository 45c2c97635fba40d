"""Step: the source commits between the running image and the new one (from their revision labels)."""

from __future__ import annotations

from bot.changelog import changelog_markdown, label_source_problem
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
    # --source-repo and promotion.yaml's apps.*.source are the operators' choice; a label is anyone's
    # who can push an image, so it is used only when it names a forge repository (never a local path).
    label, problem = new_labels.get(SOURCE_LABEL), None
    if label and (problem := label_source_problem(label)):
        problem = f"the image's source label is not used: {problem}"
        label = None
    source = source_repo or label or promotion.app.source
    outcome.changelog = changelog_markdown(source, old_labels.get(REVISION_LABEL), new_labels.get(REVISION_LABEL),
                                           problem)
