"""checkov (Bridgecrew's IaC scanner) in a venv of its own under .devenv, pinned.

Not a test extra of the project: checkov pins boto3/botocore, packaging and networkx to versions that
would downgrade what the service and moto use, so it gets its own interpreter environment. Installed
by scripts/bootstrap (pip from PyPI), reused afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import venv

from devenv import STATE_DIR
from devenv.process import ServiceError

CHECKOV_VERSION = "3.3.30"
VENV_DIR = STATE_DIR / "checkov-venv"


def checkov_binary() -> str:
    """Path of checkov CHECKOV_VERSION, installing it into its own venv on first use."""
    binary = VENV_DIR / "bin" / "checkov"
    stamp = VENV_DIR / f".installed-{CHECKOV_VERSION}"
    if binary.exists() and stamp.exists():
        return str(binary)
    venv.create(VENV_DIR, with_pip=True, clear=True)
    log = STATE_DIR / "logs" / "checkov-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run([str(VENV_DIR / "bin" / "pip"), "install", "--quiet", f"checkov=={CHECKOV_VERSION}"],
                                stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800)
    if result.returncode != 0 or not binary.exists():
        raise ServiceError(f"installing checkov {CHECKOV_VERSION} failed; see {log}")
    stamp.touch()
    return str(binary)


if __name__ == "__main__":
    print(checkov_binary())
    sys.exit(0)
