"""envbot propose: open, update, close or merge the promotion pull request of every app and environment.

For each app and each environment with an upstream in promotion.yaml, compare the upstream's release
with the environment's; keep that environment's promotion pull request (branch envbot/promote-APP-ENV,
the same one `envbot promote` opens) in step with it: opened, updated (superseding an older proposal),
closed when the environments are equal again, left alone when nothing is new. Gates (soak, Argo CD,
freeze, artifacts, chart) are posted as pull request statuses; with `autoMerge: true` the proposal is
completed once all are green. Run it on a schedule: each run re-evaluates the gates.
"""

from __future__ import annotations

import argparse

from bot.errors import EXIT_CODES
from bot.git import Identity, open_workspace
from bot.output import emit
from bot.policy import load_policy
from bot.proposals import Proposal, Proposer, describe_gates, reconcile_all

JSON_SCHEMA = "propose"   # bot/schemas/propose.json: the shape of `--json` output
WRITES = True   # commits and pushes proposal branches: --dry-run and the commit identity options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source-repo", help="source repository (path or URL) for the changelogs "
                                              "(default: the image's org.opencontainers.image.source label)")


def _line(proposal: Proposal) -> str:
    where = f"{proposal.app} {proposal.upstream} -> {proposal.env}"
    text = f"{where}: {proposal.action}"
    if proposal.pull_request:
        text += f" {proposal.pull_request}"
    elif proposal.branch and proposal.action not in ("closed", "error"):
        text += f" (branch {proposal.branch})"
    if proposal.gates:
        text += f" [{describe_gates(proposal.gates)}]"
    if proposal.reason and proposal.action in ("unchanged", "closed", "error", "blocked", "merged"):
        text += f": {proposal.reason}"
    return text


def run(args: argparse.Namespace) -> int:
    with open_workspace(args.repo, args.branch, depth=1) as ws:
        policy = load_policy(ws.path)
        apps = [policy.app(args.app)] if args.app else list(policy.apps.values())
        proposer = Proposer(ws, policy, Identity.resolve(args.git_name, args.git_email), dry_run=args.dry_run,
                            source_repo=args.source_repo)
        results = reconcile_all(proposer, apps)
    payload = {"dry_run": args.dry_run, "proposals": [p.as_dict() for p in results],
               "counts": {action: sum(1 for p in results if p.action == action)
                          for action in sorted({p.action for p in results})}}
    emit(args.json, payload, "".join(_line(p) + "\n" for p in results))
    # A proposal that failed does not stop the others; the exit code is the first failure's kind.
    failed = [p for p in results if p.action == "error"]
    return EXIT_CODES[failed[0].kind or "internal"] if failed else 0
