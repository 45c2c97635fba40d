"""What "a release commit" is, for every verb that asks (history, rollback --to, status, propose).

A release is an envbot `update` or `promote` of one app in one environment. On the branch it is the
first-parent commit that brought it: envbot's own commit when it pushed directly, or the merge
commit of its pull request (the trailers are then on the merged branch's tip, the merge's second
parent). Trailers count only on commits envbot made: authored by envbot's identity and carrying
the full trailer set (Envbot-Action, -App, -Env). A person's commit that merely contains an
`Envbot-Reverts:` line cannot hide a release from rollback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.errors import BadInput
from bot.git import CommitInfo, Identity, Workspace

RELEASE_ACTIONS = ("update", "promote")
REQUIRED_TRAILERS = ("Envbot-Action", "Envbot-App", "Envbot-Env")


def made_by_envbot(commit: CommitInfo, identity: Identity) -> bool:
    return commit.email == identity.email and all(key in commit.trailers for key in REQUIRED_TRAILERS)


@dataclass(frozen=True)
class BranchCommit:
    """A first-parent commit of the branch that touched the values file, and envbot's commit behind it."""

    commit: CommitInfo                 # on the branch (what a rollback reverts)
    envbot: CommitInfo | None          # the commit itself or its merged pull request's tip, if envbot made it

    def is_release(self, app: str, env: str) -> bool:
        return self.envbot is not None and is_release(self.envbot, app, env)

    def reverts(self) -> tuple[str, ...]:
        return self.envbot.multi_trailers.get("Envbot-Reverts", ()) if self.envbot is not None else ()


def is_release(commit: CommitInfo, app: str, env: str) -> bool:
    return (commit.trailers.get("Envbot-Action") in RELEASE_ACTIONS and commit.trailers.get("Envbot-App") == app
            and commit.trailers.get("Envbot-Env") == env)


def envbot_commit(ws: Workspace, commit: CommitInfo, identity: Identity) -> CommitInfo | None:
    """COMMIT when envbot made it; for a pull request's merge commit, the merged tip when envbot made that."""
    if made_by_envbot(commit, identity):
        return commit
    if len(commit.parents) > 1:
        merged = ws.commit_info(commit.parents[1])
        if made_by_envbot(merged, identity):
            return merged
    return None


def branch_commits(ws: Workspace, paths: str | list[str], identity: Identity) -> Iterator[BranchCommit]:
    """First-parent commits touching PATHS (the release's files), newest first, each with the envbot commit
    behind it."""
    for commit in ws.walk([paths] if isinstance(paths, str) else paths):
        yield BranchCommit(commit, envbot_commit(ws, commit, identity))


def commits_to_revert(ws: Workspace, paths: str | list[str], app: str, env: str, identity: Identity,
                      to: str | None) -> list[str]:
    """First-parent commits a rollback reverts, newest first.

    Without TO: the newest release not reverted yet. With TO (any commit `envbot history` lists:
    a release, the envbot commit inside a merged pull request, a person's edit): every release
    that landed after it; a release whose envbot commit is TO itself (or older) is kept.
    """
    stop = ws.resolve(to) if to else None
    if stop is not None and not ws.is_ancestor(stop, "HEAD"):
        raise BadInput(f"{to} is not in the history of {ws.branch}")
    reverted: set[str] = set()
    chosen: list[str] = []
    for entry in branch_commits(ws, paths, identity):
        if stop is not None and (ws.is_ancestor(entry.commit.sha, stop) or (
                entry.envbot is not None and ws.is_ancestor(entry.envbot.sha, stop))):
            break
        reverted.update(entry.reverts())
        if entry.commit.sha in reverted or not entry.is_release(app, env):
            continue
        chosen.append(entry.commit.sha)
        if stop is None:
            break
    return chosen
