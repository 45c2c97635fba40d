"""A promotion is a list of small steps run on one shared state, like Kargo's promotion steps:

edit_pins | revert -> render_diff -> describe -> recheck -> commit -> land

Each step is one module with `run(promotion)`. When the landing push is rejected because another
writer moved the branch, the whole list is replayed on the new tip (a rebase that re-validates), so
no concurrent update is lost and none is applied twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.git import Identity, PushRejected, Workspace
from bot.policy import App, Environment, Policy
from bot.render import ResourceDiff
from bot.values import ReleasePin

MAX_ATTEMPTS = 30


@dataclass
class Promotion:
    """What the steps share: inputs set by the command, outputs filled in by the steps."""

    workspace: Workspace
    policy: Policy
    app: App
    env: Environment
    action: str                                      # update | promote | rollback
    identity: Identity
    dry_run: bool = False
    pin: ReleasePin | None = None                    # edit_pins: the wanted pin
    revert_commits: list[str] = field(default_factory=list)   # revert: newest first
    subject: str = ""
    trailers: list[tuple[str, str]] = field(default_factory=list)   # besides Action/App/Env/Image/Model
    prechecks: list[Callable[[], None]] = field(default_factory=list)
    changelog: str = ""                              # markdown "Source changes" section
    render: bool = True                              # render the manifest diff for the description
    model_section: str = ""                          # markdown "Model" section (bot.modelgates)
    # Outputs.
    old_pin: ReleasePin | None = None
    new_pin: ReleasePin | None = None
    patches: dict[str, str] = field(default_factory=dict)
    rendered: list[ResourceDiff] | None = None
    description: str = ""
    commit: str | None = None
    landed: str = ""                                 # pushed | pull-request | nothing
    pull_request: str | None = None                  # URL, when a forge opened or updated one
    branch: str | None = None                        # the pull-request branch
    attempts: int = 0

    @property
    def values_path(self) -> str:
        return self.policy.repo_path(self.app, self.env.name)

    @property
    def pr_branch(self) -> str:
        return f"envbot/{self.action}-{self.app.name}-{self.env.name}"

    def reset_outputs(self) -> None:
        self.old_pin = self.new_pin = self.rendered = self.commit = self.pull_request = self.branch = None
        self.patches, self.description, self.landed = {}, "", ""


Step = Callable[[Promotion], None]


def run_steps(promotion: Promotion, steps: Sequence[Step]) -> Promotion:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        promotion.attempts = attempt
        try:
            for step in steps:
                step(promotion)
            return promotion
        except PushRejected:
            if attempt == MAX_ATTEMPTS:
                raise
            # Jitter so writers that collided do not collide again in lockstep.
            time.sleep(random.uniform(0, 0.02 * attempt))
            promotion.workspace.reset_to_remote()
            promotion.reset_outputs()
    return promotion
