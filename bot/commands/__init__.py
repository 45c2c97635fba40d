"""One module per verb (pre-commit's layout): each has add_arguments(parser) and run(args) -> exit code."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.git import Identity, Workspace, open_workspace
from bot.output import emit
from bot.policy import App, Policy, load_policy
from bot.steps import Promotion

VERBS = ("update", "promote", "propose", "rollback", "diff", "status", "history", "verify", "metrics",
         "dashboard")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="environments repo: URL, bare repo or checkout (default: the checkout "
                                       "around the current directory holding promotion.yaml)")
    parser.add_argument("--branch", help="branch of the environments repo (default: its default branch)")
    parser.add_argument("--app", help="app in promotion.yaml (default: ai-app)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--dry-run", action="store_true", help="print the exact patch of every file; change nothing")
    parser.add_argument("--git-name", help="commit author name (default: $ENVBOT_GIT_NAME or envbot)")
    parser.add_argument("--git-email", help="commit author email (default: $ENVBOT_GIT_EMAIL)")


@dataclass
class Session:
    workspace: Workspace
    policy: Policy
    app: App
    identity: Identity


@contextmanager
def session(args: argparse.Namespace, depth: int | None = 1) -> Iterator[Session]:
    """The environments repo cloned, its promotion.yaml loaded and the app chosen."""
    with open_workspace(args.repo, args.branch, depth=depth) as ws:
        policy = load_policy(ws.path)
        app = policy.app(args.app)
        paths = [policy.repo_path(app, env.name) for env in policy.environments]
        if app.chart.path:
            chart = (policy.root / app.chart.path).resolve()
            if chart.is_relative_to(ws.path.resolve()):
                paths.append(chart.relative_to(ws.path.resolve()).as_posix())
        ws.include(paths)
        yield Session(ws, policy, app, Identity.resolve(args.git_name, args.git_email))


def patches_text(patches: dict[str, str]) -> str:
    return "".join(patches.values()) or "No change.\n"


def report(args: argparse.Namespace, promotion: Promotion, extra: dict | None = None) -> int:
    """Print what a promotion did: patches in a dry run, else the commit and where it landed."""
    payload = {
        "action": promotion.action, "app": promotion.app.name, "env": promotion.env.name,
        "changed": bool(promotion.patches), "dry_run": promotion.dry_run, "commit": promotion.commit,
        "landed": promotion.landed or "nothing", "branch": promotion.branch, "pull_request": promotion.pull_request,
        "pin": promotion.new_pin.as_dict() if promotion.new_pin else None,
        "previous_pin": promotion.old_pin.as_dict() if promotion.old_pin else None,
        "patches": promotion.patches, "description": promotion.description, "attempts": promotion.attempts,
        **(extra or {}),
    }
    where = f"{promotion.app.name} in {promotion.env.name}"
    if not promotion.patches:
        text = f"{where}: already pinned; nothing to commit"
    elif promotion.dry_run:
        text = patches_text(promotion.patches)
        if promotion.description and promotion.env.landing != "push":
            text += "\n# Pull request description:\n\n" + promotion.description
    else:
        landed = {
            "pushed": f"pushed to {promotion.workspace.branch}",
            "pull-request": f"pull request {promotion.pull_request}",
            "branch": f"pushed branch {promotion.branch} for review",
        }.get(promotion.landed, promotion.landed)
        text = f"{where}: {promotion.action} committed {promotion.commit[:12] if promotion.commit else '-'}, {landed}"
        if promotion.landed == "branch":
            text += "\n\n" + promotion.description
    emit(args.json, payload, text)
    return 0
