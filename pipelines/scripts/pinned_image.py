"""Prints the image an environment pins, as `<repository>@<digest>`, from `envbot status --json` on stdin.

Usage: envbot status --repo URL --json | pinned_image.py dev
A model-only release passes this to `envbot update ENV --image` so the environment keeps its image.
"""

from __future__ import annotations

import argparse
import json
import sys


def pinned_image(status: dict, env: str) -> str:
    """`<repository>@<digest>` of ENV in envbot's status payload; SystemExit names what is missing."""
    rows = {row.get("env"): row for row in status.get("environments") or []}
    if env not in rows:
        raise SystemExit(f"envbot status: no environment {env!r} (have {', '.join(map(str, rows)) or 'none'})")
    image = rows[env].get("image") or {}
    repository, digest = image.get("repository"), image.get("digest")
    if not repository or not str(digest or "").startswith("sha256:"):
        raise SystemExit(f"envbot status: {env} pins no image digest (image: {image or 'missing'})")
    return f"{repository}@{digest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="environment name, e.g. dev")
    args = parser.parse_args(argv)
    try:
        status = json.load(sys.stdin)
    except ValueError as err:
        raise SystemExit(f"envbot status --json: not JSON: {err}") from err
    print(pinned_image(status, args.env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
