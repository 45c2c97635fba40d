"""Prints the environments (one a line, in promotion order) whose files a change touches.

Usage: changed_environments.py --repo DIR --base REF [--head REF] [--details]
With --details each line is "<env> <namespace> <values file> <chart>", paths relative to the
repository's parent directory (the chart resolved as promotion.yaml says: a local path, or
"<repo>/<name>" for an OCI chart), ready for `helm template`.
An environment is changed when any file under its directory (the directory of its values file
in promotion.yaml) differs between the merge base of BASE and HEAD, and HEAD. A change to
promotion.yaml itself changes every environment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path, PurePosixPath

from bot.output import EnvbotError
from bot.policy import DEFAULT_APP, Policy, load_policy


def environment_dirs(policy: Policy, app: str = DEFAULT_APP) -> dict[str, PurePosixPath]:
    """env name -> its directory relative to the repository root, in promotion order."""
    chosen = policy.app(app)
    return {env.name: PurePosixPath(policy.repo_path(chosen, env.name)).parent for env in policy.environments}


def changed_files(repo: Path, base: str, head: str) -> list[PurePosixPath]:
    result = subprocess.run(
        ["git", "-C", str(repo), "diff", "--name-only", "--end-of-options", f"{base}...{head}", "--"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"git diff {base}...{head} in {repo}: {result.stderr.strip()}")
    return [PurePosixPath(line) for line in result.stdout.splitlines() if line]


def changed_environments(repo: Path, base: str, head: str = "HEAD") -> list[str]:
    policy = _policy(repo)
    dirs = environment_dirs(policy)
    files = changed_files(repo, base, head)
    if PurePosixPath(policy.file.relative_to(repo).as_posix()) in files:
        return list(dirs)
    return [name for name, directory in dirs.items() if any(directory in f.parents for f in files)]


def render_details(repo: Path, names: list[str]) -> list[str]:
    policy = _policy(repo)
    app = policy.app(DEFAULT_APP)
    if app.chart.path:
        chart_ref = str(policy.root / app.chart.path)
    elif app.chart.repo and app.chart.name:
        chart_ref = f"{app.chart.repo}/{app.chart.name}"
    else:
        raise SystemExit(f"{policy.file}: apps.{app.name}.chart needs path, or repo and name")
    return [f"{name} {policy.env(name).namespace} {policy.values_file(app, name)} {chart_ref}" for name in names]


def _policy(repo: Path) -> Policy:
    try:
        return load_policy(repo)
    except EnvbotError as err:
        raise SystemExit(f"{repo}: {err}") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="the environments repository checkout")
    parser.add_argument("--base", required=True, help="the target branch ref, e.g. origin/main")
    parser.add_argument("--head", default="HEAD", help="the pull request's commit (default HEAD)")
    parser.add_argument("--details", action="store_true", help="also namespace, values file and chart")
    args = parser.parse_args(argv)
    names = changed_environments(args.repo, args.base, args.head)
    for line in render_details(args.repo, names) if args.details else names:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
