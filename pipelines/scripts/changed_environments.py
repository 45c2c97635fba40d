"""Prints the environments (one a line, in promotion order) whose files a change touches.

Usage: changed_environments.py --repo DIR --base REF [--head REF] [--details]
       changed_environments.py --repo DIR --local-chart
With --details each line is "<env> <namespace> <values file> <chart>", paths relative to the
repository's parent directory, ready for `helm template`. The chart is the one the environment
pins (<env>/chart.yaml): its package pulled from the registry by digest (envbot's cache), so the
pull request renders exactly what Argo CD or Flux would deploy. An environment without a chart
pin falls back to promotion.yaml's chart (a local path, or "<repo>/<name>" for an OCI chart).
--local-chart prints only the directory of promotion.yaml's local chart (nothing for an OCI chart),
for the pipeline to provide it when the environments repository does not hold it.
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


def _policy_chart(policy: Policy) -> str:
    app = policy.app(DEFAULT_APP)
    if app.chart.path:
        return str(policy.root / app.chart.path)
    if app.chart.repo and app.chart.name:
        return f"{app.chart.repo}/{app.chart.name}"
    raise SystemExit(f"{policy.file}: apps.{app.name}.chart needs path, or repo and name (or pin the chart in "
                     f"each environment's chart.yaml)")


def render_details(repo: Path, names: list[str]) -> list[str]:
    from bot.charts import fetch_chart
    from bot.pins import read_release_with

    policy = _policy(repo)
    app = policy.app(DEFAULT_APP)

    def read(path: str) -> str | None:
        file = repo / path
        return file.read_text() if file.is_file() else None

    lines = []
    for name in names:
        try:
            pin = read_release_with(read, policy, app, name)
            chart_path = policy.chart_pin_repo_path(app, name)
            chart = str(fetch_chart(pin.chart, chart_path)) if pin and pin.chart.repository else _policy_chart(policy)
        except EnvbotError as err:
            raise SystemExit(f"{repo}: {err}") from err
        lines.append(f"{name} {policy.env(name).namespace} {policy.values_file(app, name)} {chart}")
    return lines


def local_chart(repo: Path) -> str:
    """The directory promotion.yaml's local chart path names, relative to REPO's parent (as --details),
    or "" for an OCI or helm-repository chart."""
    policy = _policy(repo)
    app = policy.app(DEFAULT_APP)
    return str(policy.root / app.chart.path) if app.chart.path else ""


def _policy(repo: Path) -> Policy:
    try:
        return load_policy(repo)
    except EnvbotError as err:
        raise SystemExit(f"{repo}: {err}") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="the environments repository checkout")
    parser.add_argument("--base", help="the target branch ref, e.g. origin/main")
    parser.add_argument("--head", default="HEAD", help="the pull request's commit (default HEAD)")
    parser.add_argument("--details", action="store_true", help="also namespace, values file and chart")
    parser.add_argument("--local-chart", action="store_true", help="only print the local chart's directory")
    args = parser.parse_args(argv)
    if args.local_chart:
        print(local_chart(args.repo))
        return 0
    if not args.base:
        parser.error("--base is required (except with --local-chart)")
    names = changed_environments(args.repo, args.base, args.head)
    for line in render_details(args.repo, names) if args.details else names:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
