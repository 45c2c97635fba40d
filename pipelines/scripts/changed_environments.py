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

from ruamel.yaml import YAML, YAMLError


def environment_dirs(promotion_file: Path) -> dict[str, PurePosixPath]:
    """env name -> its directory relative to the repository root, in promotion order."""
    try:
        promotion = YAML(typ="safe").load(promotion_file.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as err:
        raise SystemExit(f"{promotion_file}: {err}") from err
    apps = promotion.get("apps") or {}
    app = apps.get("ai-app") or next(iter(apps.values()), {})
    pattern = app.get("values", "{env}/values.yaml")
    dirs: dict[str, PurePosixPath] = {}
    for index, env in enumerate(promotion.get("environments") or []):
        if not isinstance(env, dict) or not env.get("name"):
            raise SystemExit(f"{promotion_file}: environments[{index}]: missing name")
        dirs[env["name"]] = PurePosixPath(pattern.format(env=env["name"])).parent
    return dirs


def changed_files(repo: Path, base: str, head: str) -> list[PurePosixPath]:
    result = subprocess.run(
        ["git", "-C", str(repo), "diff", "--name-only", f"{base}...{head}"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"git diff {base}...{head} in {repo}: {result.stderr.strip()}")
    return [PurePosixPath(line) for line in result.stdout.splitlines() if line]


def changed_environments(repo: Path, base: str, head: str = "HEAD") -> list[str]:
    dirs = environment_dirs(repo / "promotion.yaml")
    files = changed_files(repo, base, head)
    if PurePosixPath("promotion.yaml") in files:
        return list(dirs)
    return [name for name, directory in dirs.items() if any(directory in f.parents for f in files)]


def render_details(repo: Path, names: list[str]) -> list[str]:
    promotion = YAML(typ="safe").load((repo / "promotion.yaml").read_text(encoding="utf-8"))
    apps = promotion.get("apps") or {}
    app = apps.get("ai-app") or next(iter(apps.values()), {})
    chart = app.get("chart") or {}
    if "path" in chart:
        chart_ref = str(repo / chart["path"])
    elif "repo" in chart and "name" in chart:
        chart_ref = f"{chart['repo']}/{chart['name']}"
    else:
        raise SystemExit(f"{repo / 'promotion.yaml'}: apps chart needs path, or repo and name")
    namespaces = {env["name"]: env.get("namespace", env["name"]) for env in promotion["environments"]}
    pattern = app.get("values", "{env}/values.yaml")
    return [f"{name} {namespaces[name]} {repo / pattern.format(env=name)} {chart_ref}" for name in names]


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
