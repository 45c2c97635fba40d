"""KServe's Python client (kserve.InferenceGRPCClient) in a venv of its own under .devenv, pinned.

Not a test extra of the project: kserve pins protobuf<7 and the service runs protobuf 7, so the client
gets its own interpreter environment and tests run it as a subprocess (tests/app/kserve_grpc_client.py).
Installed by scripts/bootstrap (pip from PyPI), reused afterwards; like devenv/checkov.py.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from devenv import STATE_DIR
from devenv.process import ServiceError

KSERVE_VERSION = "0.21.0"
VENV_DIR = STATE_DIR / "kserve-venv"


def kserve_python() -> Path:
    """The interpreter of a venv with kserve KSERVE_VERSION, installing it on first use."""
    python = VENV_DIR / "bin" / "python"
    stamp = VENV_DIR / f".installed-{KSERVE_VERSION}"
    if python.exists() and stamp.exists():
        return python
    venv.create(VENV_DIR, with_pip=True, clear=True)
    log = STATE_DIR / "logs" / "kserve-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"kserve=={KSERVE_VERSION}"],
                                stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800)
    if result.returncode != 0:
        raise ServiceError(f"installing kserve {KSERVE_VERSION} failed; see {log}")
    stamp.touch()
    return python


if __name__ == "__main__":
    print(kserve_python())
    sys.exit(0)
