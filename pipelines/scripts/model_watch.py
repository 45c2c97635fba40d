"""Prints the URI of a model version newer than the one an environment pins, or nothing.

Usage: model_watch.py --values environments/dev/values.yaml
Looks beside the pinned model in its store (same account and container or bucket, same model name:
app.modelstore.list_versions) and prints the URI of the highest published version when it is newer
than the pin, in natural version order ("10" > "9"). Auth as app.modelstore.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ruamel.yaml import YAML, YAMLError

from app.modelstore import ModelStoreError, list_versions, model_uri, parse_uri, version_key


def pinned_model_uri(values_file: Path) -> str:
    """The model URI an environment's values.yaml pins (model.uri)."""
    try:
        values = YAML(typ="safe").load(values_file.read_text(encoding="utf-8")) or {}
    except (OSError, YAMLError) as err:
        raise SystemExit(f"{values_file}: {err}") from err
    uri = (values.get("model") or {}).get("uri") if isinstance(values, dict) else None
    if not uri:
        raise SystemExit(f"{values_file}: model.uri is missing")
    return str(uri)


def newer_model_uri(pinned_uri: str) -> str | None:
    """The URI of the highest version published beside `pinned_uri`, if it is newer than the pinned one."""
    pinned = parse_uri(pinned_uri)
    versions = list_versions(pinned_uri)
    if not versions or version_key(versions[-1]) <= version_key(pinned.version):
        return None
    return model_uri(pinned_uri.rsplit("/", 3)[0], pinned.name, versions[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=Path, required=True, help="the environment's values.yaml")
    args = parser.parse_args(argv)
    pinned = pinned_model_uri(args.values)
    try:
        uri = newer_model_uri(pinned)
    except ModelStoreError as err:
        print(f"{args.values}: model.uri: {err}", file=sys.stderr)
        return 1
    if uri:
        print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
