"""Step: land the commit as the environment's policy says: push it, or open/update a pull request.

auto-merge opens the pull request with the forge's auto-merge/auto-complete on; a plain git remote has
no pull requests, so there push/auto-merge push to the branch and pull-request pushes only the
envbot/... branch and prints the description for a person to act on.
"""

from __future__ import annotations

from bot.git import Workspace
from bot.output import EnvbotError, info
from bot.steps import Outcome, Promotion


def _open_pull_request(promotion: Promotion, outcome: Outcome, auto_merge: bool):  # -> PullRequest | None
    from bot.forges import ForgeError, open_or_update_pull_request

    ws = promotion.workspace
    try:
        return open_or_update_pull_request(ws.forge_url, promotion.pr_branch, ws.branch, promotion.subject,
                                           outcome.description, auto_merge=auto_merge)
    except ForgeError as exc:
        raise EnvbotError(f"pull request for {promotion.pr_branch}: {exc}") from exc


def branch_remote(ws: Workspace) -> str:
    """Where the pull-request branch goes: the forge of a local checkout's origin, else the target."""
    from bot.forges import parse_remote

    # From a checkout the pull request is opened on its origin's forge, which must have the branch.
    if ws.checkout is not None and parse_remote(ws.forge_url) is not None:
        return ws.forge_url
    return "origin"


def run(promotion: Promotion, outcome: Outcome) -> None:
    if promotion.dry_run or outcome.commit is None:
        outcome.landed = "nothing"
        return
    ws = promotion.workspace
    landing = promotion.env.landing
    if landing == "push":
        ws.push(f"refs/heads/{ws.branch}")
        outcome.landed = "pushed"
        return
    # The branch name is deterministic: re-running the same promotion force-updates the same pull request.
    ws.push(f"refs/heads/{promotion.pr_branch}", force=True, remote=branch_remote(ws))
    outcome.branch = promotion.pr_branch
    pull_request = _open_pull_request(promotion, outcome, auto_merge=landing == "auto-merge")
    if pull_request is not None:
        outcome.pull_request = pull_request.url
        outcome.landed = "pull-request"
        return
    if landing == "auto-merge":
        ws.push(f"refs/heads/{ws.branch}")
        outcome.landed = "pushed"
        return
    # No forge: the command prints the description for whoever reviews and merges the branch.
    outcome.landed = "branch"
    info(f"{ws.forge_url} has no pull requests (not GitHub or Azure Repos): pushed branch "
         f"{promotion.pr_branch}; merge it into {ws.branch} after review")
