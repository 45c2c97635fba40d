"""A promotion is a list of small steps, like Kargo's promotion steps:

edit_pins | revert -> changelog -> render_diff -> describe -> recheck -> commit -> land

`Promotion` holds the frozen inputs a command sets; each attempt gets a fresh `Outcome` the steps
fill in, so a retry cannot inherit anything from the attempt before it. Each step is one module
with `run(promotion, outcome)`.

When the landing push is rejected because another writer moved the branch:
- if the new commits touch none of the files the promotion read or wrote, the prepared commit is
  rebased onto the new tip and pushed again (cheap: no render, no registry, no re-edit);
- otherwise (a real overlap) the inputs are re-read (`refresh`: the source pin, the revert list,
  the gates) and the whole list is replayed on the new tip.
Either way nothing is lost and nothing is applied twice. A push the server refuses while the
branch did not move (a hook, branch protection) is not a race: `PushRefused`, no retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.git import Identity, PushRejected, StaleBase, Workspace
from bot.policy import App, Environment, Policy
from bot.render import ResourceDiff
from bot.values import ReleasePin

# Contended writers: give up after this long (not after a fixed count: 64 writers on one file need
# up to 64 rounds) and never after fewer attempts than MIN_ATTEMPTS.
RETRY_SECONDS = 900.0
MIN_ATTEMPTS = 30
# Exponential backoff with full jitter, 0.1 s doubling up to the cap: writers that keep colliding
# spread out instead of all replaying at once (only one of them can land per round).
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 5.0


@dataclass(frozen=True)
class Promotion:
    """What a command wants done; frozen: a retry that must re-read an input builds a new one (refresh)."""

    workspace: Workspace
    policy: Policy
    app: App
    env: Environment
    action: str                                      # update | promote | rollback
    identity: Identity
    dry_run: bool = False
    pin: ReleasePin | None = None                    # edit_pins: the wanted pin
    revert_commits: tuple[str, ...] = ()             # revert: newest first
    subject: str = ""
    trailers: tuple[tuple[str, str], ...] = ()       # besides Action/App/Env/Image/Model
    prechecks: tuple[Callable[[], None], ...] = ()   # re-run right before every commit
    release_check: Callable[[ReleasePin], None] | None = None   # the new pin's image and model still exist
    override_reason: str | None = None               # --override-reason: gates and release_check bypassed
    render: bool = True                              # render the manifest diff for the description
    reads: tuple[str, ...] = ()                      # repo paths besides the values file the inputs came from
    model_section: str = ""                          # markdown "Model" section (bot.modelgates)

    @property
    def values_path(self) -> str:
        return self.policy.repo_path(self.app, self.env.name)

    @property
    def chart_path(self) -> str:
        """The environment's chart pin file (it may not exist in a repo that does not pin charts)."""
        return self.policy.chart_pin_repo_path(self.app, self.env.name)

    @property
    def paths(self) -> list[str]:
        """Every file of the environment's release pin."""
        return self.policy.env_paths(self.app, self.env.name)

    @property
    def pr_branch(self) -> str:
        return f"envbot/{self.action}-{self.app.name}-{self.env.name}"

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Repo paths whose change by another writer invalidates a prepared commit (forces a replay)."""
        policy_path = f"{self.policy.prefix}/promotion.yaml" if self.policy.prefix else "promotion.yaml"
        return (*self.paths, policy_path, *self.reads)


@dataclass
class Outcome:
    """What one attempt produced. A new one per attempt: nothing leaks from a failed attempt."""

    attempt: int = 1
    base: str = ""                                   # the tip the attempt started from
    old_pin: ReleasePin | None = None
    new_pin: ReleasePin | None = None
    patches: dict[str, str] = field(default_factory=dict)
    changelog: str = ""                              # markdown "Source changes" section
    rendered: list[ResourceDiff] | None = None
    description: str = ""
    commit: str | None = None
    landed: str = ""                                 # pushed | pull-request | branch | nothing
    pull_request: str | None = None                  # URL, when a forge opened or updated one
    branch: str | None = None                        # the pull-request branch
    rebased: int = 0                                 # times the prepared commit moved onto a newer tip
    replayed: int = 0                                # times the whole list ran again after an overlap


Step = Callable[[Promotion, Outcome], None]
Refresh = Callable[[Promotion], Promotion]


def _backoff(attempt: int) -> None:
    # Full jitter: writers that collided do not collide again in lockstep.
    time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempt - 1, 10))))


def run_steps(promotion: Promotion, steps: Sequence[Step], refresh: Refresh | None = None) -> tuple[Promotion,
                                                                                                  Outcome]:
    """Run STEPS until they land; returns the inputs of the landing attempt and its outcome."""
    ws = promotion.workspace
    deadline = time.monotonic() + RETRY_SECONDS
    outcome = Outcome(attempt=1, base=ws.head())
    try:
        return _attempts(promotion, steps, refresh, outcome, deadline)
    finally:
        # The first push took this machine's turn at the target (bot/pushqueue.py): the next writer's now.
        ws.release_turn()


def _attempts(promotion: Promotion, steps: Sequence[Step], refresh: Refresh | None, outcome: Outcome,
              deadline: float) -> tuple[Promotion, Outcome]:
    from bot.steps import land

    ws = promotion.workspace
    attempt, rebased, replayed = outcome.attempt, 0, 0
    pending: Sequence[Step] = steps
    while True:
        try:
            for step in pending:
                step(promotion, outcome)
            outcome.rebased, outcome.replayed = rebased, replayed
            return promotion, outcome
        except PushRejected as exc:
            if attempt >= MIN_ATTEMPTS and time.monotonic() > deadline:
                raise
            if isinstance(exc, StaleBase):
                # Seen on taking the turn, nothing sent: go on from the tip fetched then.
                new_tip = exc.tip
            else:
                # A push was sent and lost: to a writer on another machine (writers of this one take turns,
                # bot/pushqueue.py), or the queue is off. Back off, then fetch the new tip.
                attempt += 1
                _backoff(attempt)
                new_tip = ws.fetch_tip()
            ws.reset_to(new_tip)
            # Inputs are re-read on every retry (the source pin, the revert list, the gates move with time).
            refreshed = refresh(promotion) if refresh is not None else promotion
            overlap = ws.changed_paths(outcome.base, new_tip, promotion.depends_on)
            if outcome.commit is not None and not overlap and refreshed == promotion:
                # Nothing it read or wrote changed: move the prepared commit onto the new tip and land it
                # (no edit, render or registry call again). It applies exactly: its files are as it saw them.
                rebased += 1
                outcome.commit = ws.replant(outcome.commit, new_tip, promotion.identity)
                outcome.base, outcome.attempt, outcome.landed = new_tip, attempt, ""
                pending = [land.run]
                continue
            replayed += 1
            promotion = refreshed
            outcome = Outcome(attempt=attempt, base=new_tip)
            pending = steps
