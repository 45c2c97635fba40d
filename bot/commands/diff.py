"""envbot diff A B: rendered manifest diff between two environments, or one environment at two revisions.

A and B are ENV or ENV@REV (any git revision of the environments repo): `envbot diff staging prod`,
`envbot diff prod@HEAD~3 prod`, `envbot diff prod@v1.2 prod@main`.
"""

from __future__ import annotations

import argparse

from bot.commands import session
from bot.output import EnvbotError, emit
from bot.render import diff_resources, format_diffs, render

JSON_SCHEMA = "diff"   # bot/schemas/diff.json: the shape of `--json` output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="ENV or ENV@REV (the old side)")
    parser.add_argument("b", metavar="B", help="ENV or ENV@REV (the new side)")


def run(args: argparse.Namespace) -> int:
    with session(args) as s:
        rendered = {}
        for side in (args.a, args.b):
            name, _, rev = side.partition("@")
            env = s.policy.env(name)
            sha = s.workspace.resolve(rev or "HEAD")
            path = s.policy.repo_path(s.app, env.name)
            text = s.workspace.show(sha, path)
            if text is None:
                raise EnvbotError(f"{path} does not exist at {rev or 'HEAD'}")
            # Each side renders in its own namespace: comparing environments shows their real differences.
            rendered[side] = render(s.policy, s.app, env.namespace, text, f"{path}@{sha[:12]}")
        diffs = diff_resources(rendered[args.a], rendered[args.b], args.a, args.b)
        emit(args.json, {"a": args.a, "b": args.b, "resources": [vars(d) for d in diffs]}, format_diffs(diffs))
    return 0
