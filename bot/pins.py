"""Where a pin came from: the commit that made an environment's current pin, found in git history."""

from __future__ import annotations

from bot.git import CommitInfo, Workspace
from bot.output import EnvbotError
from bot.values import ReleasePin, read_pin_text


def same_release(a: ReleasePin, b: ReleasePin) -> bool:
    """Same deployed bits: image digest and model digest (tags and URIs are for people)."""
    return a.image.digest == b.image.digest and a.model.sha256 == b.model.sha256 and a.model.uri == b.model.uri


def pin_origin(ws: Workspace, path: str, pin: ReleasePin) -> CommitInfo | None:
    """The first-parent commit that set PATH's pin to PIN: when the release landed in the environment.

    Walks back over commits touching PATH while the pin before them was already PIN (edits of other
    settings do not restart the soak clock); the clone is deepened only as far as that walk goes.
    """
    origin: CommitInfo | None = None
    for commit in ws.walk([path]):
        origin = commit
        if not commit.parents:
            break
        before = ws.show(commit.parents[0], path)
        if before is None:
            break
        try:
            previous = read_pin_text(before, f"{path}@{commit.parents[0][:12]}")
        except EnvbotError:   # an older, broken revision of the file: the pin started after it
            break
        if not same_release(previous, pin):
            break
    return origin
