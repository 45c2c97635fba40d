"""A pinned tool in a venv of its own under .devenv, for tools whose pins clash with the project's.

Installed by scripts/bootstrap (pip from PyPI) and reused afterwards: a stamp file names the version
that was installed, so a version bump reinstalls. Used by devenv/checkov.py and devenv/kserve_client.py.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

from devenv import STATE_DIR
from devenv.process import ServiceError


def ensure(venv_dir: Path, package: str, version: str, needed: Path) -> Path:
    """NEEDED (a file inside VENV_DIR) once PACKAGE==VERSION is installed there; installs it if missing."""
    stamp = venv_dir / f".installed-{version}"
    if needed.exists() and stamp.exists():
        return needed
    venv.create(venv_dir, with_pip=True, clear=True)
    log = STATE_DIR / "logs" / f"{package}-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run([str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                 f"{package}=={version}"],
                                stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800)
    if result.returncode != 0 or not needed.exists():
        raise ServiceError(f"installing {package} {version} failed; see {log}")
    stamp.touch()
    return needed
