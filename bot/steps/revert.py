"""Step: `git revert` the chosen envbot commits (newest first) into the work tree, touching only ENV's release files."""

from __future__ import annotations

import git

from bot.errors import Conflict, EnvbotError
from bot.pins import read_release, read_release_with
from bot.steps import Outcome, Promotion
from bot.steps.patches import record_patches


def run(promotion: Promotion, outcome: Outcome) -> None:
    ws = promotion.workspace
    g = ws.g
    display = promotion.values_path
    outcome.old_pin = read_release(ws, "HEAD", promotion.policy, promotion.app, promotion.env.name)
    for sha in promotion.revert_commits:
        parents = g.rev_list("--parents", "-n", "1", sha).split()[1:]
        mainline = ["-m", "1"] if len(parents) > 1 else []
        try:
            g.revert("--no-commit", *mainline, sha)
        except git.GitCommandError as exc:
            conflicted = g.diff("--name-only", "--diff-filter=U").split()
            if (ws.path / ".git" / "REVERT_HEAD").exists():
                g.revert("--abort")
            else:
                g.reset("--hard", "--quiet")
            where = ", ".join(conflicted) or display
            raise Conflict(f"reverting {sha[:12]} conflicts with later changes in {where}; nothing was "
                              f"committed or pushed (resolve it by hand or pass --to)") from exc
    touched = set(g.diff("--cached", "--name-only", "HEAD").split())
    outside = sorted(touched - set(promotion.paths))
    if outside:
        g.reset("--hard", "--quiet", "HEAD")
        raise EnvbotError(f"the revert would also change {', '.join(outside)}, not only the release files "
                          f"{', '.join(promotion.paths)} of {promotion.env.name}; refusing")

    def work_tree(path: str) -> str | None:
        file = ws.path / path
        return file.read_text() if file.is_file() else None

    if work_tree(display) is None:
        g.reset("--hard", "--quiet", "HEAD")
        raise EnvbotError(f"the revert would delete {display}; refusing")
    outcome.new_pin = read_release_with(work_tree, promotion.policy, promotion.app, promotion.env.name)
    record_patches(promotion, outcome, [p for p in promotion.paths if p in touched])
