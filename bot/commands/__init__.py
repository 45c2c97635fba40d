"""One module per verb (pre-commit's layout): each has add_arguments(parser) and run(args) -> exit code."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.git import Identity, Workspace, open_workspace
from bot.output import emit
from bot.policy import App, Policy, load_policy
from bot.steps import Outcome, Promotion

VERBS = ("update", "promote", "propose", "rollback", "diff", "status", "history", "verify", "metrics",
         "dashboard")


def add_common_arguments(parser: argparse.ArgumentParser, writes: bool = False, one_app: bool = True) -> None:
    """Options every verb has; WRITES: also those of verbs that commit (read-only verbs refuse --dry-run);
    ONE_APP: the verb works on one app of promotion.yaml (--app); a verb over every app refuses --app."""
    parser.add_argument("--repo", help="environments repo: URL, bare repo or checkout (default: the checkout "
                                       "around the current directory holding promotion.yaml)")
    parser.add_argument("--branch", help="branch of the environments repo (default: its default branch)")
    if one_app:
        parser.add_argument("--app", help="app in promotion.yaml (default: ai-app)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (on failure: a JSON error "
                                                          "object, see docs/envbot-json.md)")
    if not writes:
        return
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
        paths = [path for env in policy.environments for path in policy.env_paths(app, env.name)]
        if app.chart.path:
            chart = (policy.root / app.chart.path).resolve()
            if chart.is_relative_to(ws.path.resolve()):
                paths.append(chart.relative_to(ws.path.resolve()).as_posix())
        ws.include(paths)
        yield Session(ws, policy, app, Identity.resolve(getattr(args, "git_name", None),
                                                        getattr(args, "git_email", None)))


def patches_text(patches: dict[str, str]) -> str:
    return "".join(patches.values()) or "No change.\n"


def report(args: argparse.Namespace, promotion: Promotion, outcome: Outcome, extra: dict | None = None) -> int:
    """Print what a promotion did: patches in a dry run, else the commit and where it landed."""
    payload = {
        "action": promotion.action, "app": promotion.app.name, "env": promotion.env.name,
        "changed": bool(outcome.patches), "dry_run": promotion.dry_run, "commit": outcome.commit,
        "landed": outcome.landed or "nothing", "branch": outcome.branch, "pull_request": outcome.pull_request,
        "pin": outcome.new_pin.as_dict() if outcome.new_pin else None,
        "previous_pin": outcome.old_pin.as_dict() if outcome.old_pin else None,
        "patches": outcome.patches, "description": outcome.description or None, "attempts": outcome.attempt,
        "rebased": outcome.rebased, "replayed": outcome.replayed,
        **(extra or {}),
    }
    where = f"{promotion.app.name} in {promotion.env.name}"
    if not outcome.patches:
        text = f"{where}: already pinned; nothing to commit"
    elif promotion.dry_run:
        text = patches_text(outcome.patches)
        if outcome.description and promotion.env.landing != "push":
            text += "\n# Pull request description:\n\n" + outcome.description
    else:
        landed = {
            "pushed": f"pushed to {promotion.workspace.branch}",
            "pull-request": f"pull request {outcome.pull_request}",
            "branch": f"pushed branch {outcome.branch} for review",
        }.get(outcome.landed, outcome.landed)
        text = f"{where}: {promotion.action} committed {outcome.commit[:12] if outcome.commit else '-'}, {landed}"
        if outcome.landed == "branch":
            text += "\n\n" + outcome.description
    emit(args.json, payload, text)
    return 0
