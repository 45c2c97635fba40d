"""Local stand-ins for the Azure services the delivery flow uses.

Each module starts one real component on 127.0.0.1 for the tests and the local end-to-end run:
the Docker engine, an OCI registry over TLS (for ACR), Azurite (for Blob), moto (for S3), and
helm. Nothing here is imported by the shipped `app` or `bot` packages.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Certificates, data and logs of the local services; ignored by git.
STATE_DIR = REPO_ROOT / ".devenv"
