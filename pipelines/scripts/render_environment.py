"""Renders one environment of an environments-repo checkout: `helm template` through envbot's bot.helm.

Usage: render_environment.py --repo DIR ENV > rendered/ENV.yaml
The pull-request pipeline renders what a pull request proposes before anyone reviews it, so helm is
started the way envbot starts it (validated chart source, `--` before positionals, no symbolic link
out of the chart, a scrubbed environment without tokens); the values file must be a regular file
inside the checkout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot import helm
from bot.output import EnvbotError
from bot.policy import DEFAULT_APP, load_policy
from bot.render import repo_root


def render_environment(repo: Path, env_name: str, app_name: str = DEFAULT_APP) -> str:
    """The manifests helm renders for ENV_NAME; EnvbotError says what is wrong and where."""
    policy = load_policy(repo)
    app = policy.app(app_name)
    env = policy.env(env_name)
    values = policy.values_file(app, env.name)
    shown = policy.repo_path(app, env.name)
    if values.is_symlink() or not values.is_file() or not values.resolve().is_relative_to(repo.resolve()):
        raise EnvbotError(f"{shown}: the values file must be a regular file inside the repository")
    proc = helm.template(app.chart, policy.root, repo_root(policy), app.name, env.namespace, values,
                         f"{policy.file.name}: apps.{app.name}.chart")
    if proc.returncode != 0:
        raise EnvbotError(f"helm template with {shown} failed: {proc.stderr.strip()}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="the environments repository checkout")
    parser.add_argument("env", help="environment name (from promotion.yaml)")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render_environment(args.repo, args.env))
    except EnvbotError as err:
        print(f"render_environment: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
