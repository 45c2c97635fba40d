"""KServe's Python client (kserve.InferenceGRPCClient) in a venv of its own under .devenv, pinned.

Not a test extra of the project: kserve pins protobuf<7 and the service runs protobuf 7, so the client
gets its own interpreter environment and tests run it as a subprocess (tests/app/kserve_grpc_client.py).
Installed by scripts/bootstrap (pip from PyPI), reused afterwards; like devenv/checkov.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from devenv import STATE_DIR, toolvenv

KSERVE_VERSION = "0.21.0"
VENV_DIR = STATE_DIR / "kserve-venv"


def kserve_python() -> Path:
    """The interpreter of a venv with kserve KSERVE_VERSION, installing it on first use."""
    return toolvenv.ensure(VENV_DIR, "kserve", KSERVE_VERSION, VENV_DIR / "bin" / "python")


if __name__ == "__main__":
    print(kserve_python())
    sys.exit(0)
