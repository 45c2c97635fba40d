"""envbot diff A B: rendered manifest diff between two environments, or one environment at two revisions.

A and B are ENV or ENV@REV (any git revision of the environments repo): `envbot diff staging prod`,
`envbot diff prod@HEAD~3 prod`, `envbot diff prod@v1.2 prod@main`.
"""

from __future__ import annotations

import argparse

from bot.commands import session
from bot.modelgates import model_report, model_section
from bot.output import EnvbotError, emit
from bot.pins import read_release_with
from bot.policy import App, Environment, Policy
from bot.render import diff_resources, format_diffs, render
from bot.values import ReleasePin

JSON_SCHEMA = "diff"   # bot/schemas/diff.json: the shape of `--json` output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="ENV or ENV@REV (the old side)")
    parser.add_argument("b", metavar="B", help="ENV or ENV@REV (the new side)")


def side_values(repo, policy: Policy, app: App, side: str) -> tuple[Environment, str, str]:
    """(environment, values text, display name) of SIDE (ENV or ENV@REV) in REPO (a Workspace or a Mirror)."""
    name, _, rev = side.partition("@")
    env = policy.env(name)
    if rev.startswith("-"):
        raise EnvbotError(f"{side}: {rev!r} is not a revision")
    sha = repo.resolve(rev or "HEAD")
    path = policy.repo_path(app, env.name)
    text = repo.show(sha, path)
    if text is None:
        raise EnvbotError(f"{path} does not exist at {rev or 'HEAD'}")
    return env, text, f"{path}@{sha[:12]}"


def side_release(repo, policy: Policy, app: App, side: str) -> ReleasePin:
    """The whole release pin of SIDE (values file and chart pin) in REPO (a Workspace or a Mirror)."""
    name, _, rev = side.partition("@")
    sha = repo.resolve(rev or "HEAD")
    pin = read_release_with(lambda path: repo.show(sha, path), policy, app, policy.env(name).name, f"@{sha[:12]}")
    if pin is None:
        raise EnvbotError(f"{policy.repo_path(app, name)} does not exist at {rev or 'HEAD'}")
    return pin


def render_side(repo, policy: Policy, app: App, side: str) -> dict[str, str]:
    """SIDE's pinned chart rendered with SIDE's values (what `envbot diff` and the dashboard's diff page show)."""
    env, text, display = side_values(repo, policy, app, side)
    # Each side renders in its own namespace with its own pinned chart: comparing environments shows
    # their real differences, a chart change included.
    return render(policy, app, env.namespace, text, display, side_release(repo, policy, app, side).chart)


def run(args: argparse.Namespace) -> int:
    with session(args) as s:
        rendered, pins = {}, {}
        for side in (args.a, args.b):
            env, text, display = side_values(s.workspace, s.policy, s.app, side)
            pins[side] = side_release(s.workspace, s.policy, s.app, side)
            rendered[side] = render(s.policy, s.app, env.namespace, text, display, pins[side].chart)
        diffs = diff_resources(rendered[args.a], rendered[args.b], args.a, args.b)
        # The model section judges B's model by B's environment's gates, as a promotion into B would.
        b_env = s.policy.env(args.b.partition("@")[0])
        models = model_report(b_env.model_gates, s.app.evaluation, pins[args.a].model, pins[args.b].model)
        section = model_section(models)
        emit(args.json, {"a": args.a, "b": args.b, "resources": [vars(d) for d in diffs], "model": models.as_dict()},
             (section + "\n" if section else "") + format_diffs(diffs))
    return 0
