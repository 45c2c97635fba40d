"""The step list that moves a release pin into an environment (update and promote share it)."""

from __future__ import annotations

from bot.registry import RegistryClient
from bot.steps import Outcome, Promotion, Step, commit, describe, edit_pins, land, recheck, render_diff
from bot.steps import changelog as changelog_step


def steps(registry: RegistryClient, source_repo: str | None) -> list[Step]:
    def changelog(promotion: Promotion, outcome: Outcome) -> None:
        # The changelog only feeds the description, which a direct push does not show.
        if promotion.render:
            changelog_step.run(promotion, outcome, registry, source_repo)

    return [edit_pins.run, changelog, render_diff.run, describe.run, recheck.run, commit.run, land.run]
