"""Renders one environment of an environments-repo checkout: `helm template` through envbot's bot.helm.

Usage: render_environment.py --repo DIR ENV > rendered/ENV.yaml
The chart is the one ENV pins (<env>/chart.yaml), pulled by digest; it must come from the chart
repository the (target branch's) promotion.yaml names.
The pull-request pipeline renders what a pull request proposes before anyone reviews it, so helm is
started the way envbot starts it (validated chart source, `--` before positionals, no symbolic link
out of the chart, a scrubbed environment without tokens); the values file must be a regular file
inside the checkout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.output import EnvbotError
from bot.pins import read_release_with
from bot.policy import DEFAULT_APP, load_policy
from bot.render import helm_template


def render_environment(repo: Path, env_name: str, app_name: str = DEFAULT_APP) -> str:
    """The manifests helm renders for ENV_NAME; EnvbotError says what is wrong and where."""
    policy = load_policy(repo)
    app = policy.app(app_name)
    env = policy.env(env_name)
    values = policy.values_file(app, env.name)
    shown = policy.repo_path(app, env.name)
    if values.is_symlink() or not values.is_file() or not values.resolve().is_relative_to(repo.resolve()):
        raise EnvbotError(f"{shown}: the values file must be a regular file inside the repository")
    chart_file = repo / policy.chart_pin_repo_path(app, env.name)
    if chart_file.is_symlink() or (chart_file.exists() and not chart_file.resolve().is_relative_to(repo.resolve())):
        raise EnvbotError(f"{policy.chart_pin_repo_path(app, env.name)}: the chart pin must be a regular file "
                          f"inside the repository")
    pin = read_release_with(lambda p: (repo / p).read_text() if (repo / p).is_file() else None,
                            policy, app, env.name)
    # The environment's pinned chart (from the repository promotion.yaml allows), as Argo CD/Flux render it.
    return helm_template(policy, app, env.namespace, values, shown, pin.chart if pin else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="the environments repository checkout")
    parser.add_argument("env", help="environment name (from promotion.yaml)")
    args = parser.parse_args(argv)
    try:
        # Absolute: helm runs in a scratch directory (bot.helm), where relative paths name nothing.
        sys.stdout.write(render_environment(args.repo.resolve(), args.env))
    except EnvbotError as err:
        print(f"render_environment: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
