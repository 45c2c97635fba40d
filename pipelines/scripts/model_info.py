"""Prints one field of a published model's record: `model_info.py sha256|version|name URI`.

Reads the model store's metadata (app.modelstore.stat_model), so a pipeline given only a model
URI pins the sha256 the model was published with; fetch-model then verifies the bytes against it.
"""

from __future__ import annotations

import argparse
import sys

from app.modelstore import ModelStoreError, stat_model

FIELDS = ("sha256", "version", "name", "size")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("field", choices=FIELDS)
    parser.add_argument("uri")
    args = parser.parse_args(argv)
    try:
        info = stat_model(args.uri)
    except ModelStoreError as err:
        print(f"{args.uri}: {err}", file=sys.stderr)
        return 1
    print(getattr(info, args.field))
    return 0


if __name__ == "__main__":
    sys.exit(main())
