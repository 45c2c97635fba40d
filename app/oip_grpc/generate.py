"""Regenerate the stubs in app/oip_grpc/protocol from open_inference_grpc.proto with grpcio-tools.

    python -m app.oip_grpc.generate            # rewrite the committed stubs
    python -m app.oip_grpc.generate --out DIR  # write them under DIR instead (the drift test does)

The stubs are committed, so the image needs only grpcio and protobuf at run time and no compiler at
build time; grpcio-tools is pinned in the test extra to the version that generated them, and
tests/app/test_grpc_protocol.py fails when regenerating does not give the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path(__file__).resolve().parent / "protocol" / "open_inference_grpc.proto"
# What protoc writes for PROTO, relative to the output root.
GENERATED = tuple(
    PROTO.relative_to(ROOT).with_name(PROTO.stem + suffix)
    for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
)


def generate(out: Path) -> list[Path]:
    """Write the stubs under `out` (their package path inside it); return the files written."""
    from grpc_tools import protoc

    # -I is the repository root, so the generated modules import each other as app.oip_grpc.protocol.
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out / path for path in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.oip_grpc.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
