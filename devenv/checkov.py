"""checkov (Bridgecrew's IaC scanner) in a venv of its own under .devenv, pinned.

Not a test extra of the project: checkov pins boto3/botocore, packaging and networkx to versions that
would downgrade what the service and moto use, so it gets its own interpreter environment. Installed
by scripts/bootstrap (pip from PyPI), reused afterwards.
"""

from __future__ import annotations

import sys

from devenv import STATE_DIR, toolvenv

CHECKOV_VERSION = "3.3.30"
VENV_DIR = STATE_DIR / "checkov-venv"


def checkov_binary() -> str:
    """Path of checkov CHECKOV_VERSION, installing it into its own venv on first use."""
    return str(toolvenv.ensure(VENV_DIR, "checkov", CHECKOV_VERSION, VENV_DIR / "bin" / "checkov"))


if __name__ == "__main__":
    print(checkov_binary())
    sys.exit(0)
