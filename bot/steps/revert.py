"""Step: `git revert` the chosen envbot commits (newest first) into the work tree, touching only ENV's file."""

from __future__ import annotations

import git

from bot.output import EnvbotError
from bot.steps import Outcome, Promotion
from bot.steps.patches import record_patches
from bot.values import read_pin_text


def run(promotion: Promotion, outcome: Outcome) -> None:
    ws = promotion.workspace
    g = ws.g
    display = promotion.values_path
    before = ws.show("HEAD", display)
    outcome.old_pin = read_pin_text(before, display) if before is not None else None
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
            raise EnvbotError(f"reverting {sha[:12]} conflicts with later changes in {where}; nothing was "
                              f"committed or pushed (resolve it by hand or pass --to)") from exc
    touched = set(g.diff("--cached", "--name-only", "HEAD").split())
    outside = sorted(touched - {display})
    if outside:
        g.reset("--hard", "--quiet", "HEAD")
        raise EnvbotError(f"the revert would also change {', '.join(outside)}, not only {display} of "
                          f"{promotion.env.name}; refusing")
    after = (ws.path / display).read_text() if (ws.path / display).exists() else ""
    outcome.new_pin = read_pin_text(after, display)
    record_patches(promotion, outcome, [display])
