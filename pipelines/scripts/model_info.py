"""Prints a published model's name, version, sha256 and size on one line: `model_info.py URI`.

Reads the model store's record (app.modelstore.stat_model), so a pipeline given only a model URI
pins the sha256 the model was published with (fetch-model then verifies the bytes against it) and
labels the image with the model's name and version. Read it with `read -r name version sha256 size`.
"""

from __future__ import annotations

import argparse
import sys

from app.modelstore import ModelStoreError, stat_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri")
    args = parser.parse_args(argv)
    try:
        info = stat_model(args.uri)
    except ModelStoreError as err:
        print(f"model_info.py: {err}", file=sys.stderr)
        return 1
    print(info.name, info.version, info.sha256, info.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
