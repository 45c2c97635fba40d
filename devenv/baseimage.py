"""The base image for the app image when no registry can be pulled from.

Debian bookworm (minbase) with python3 3.11 and python3-venv, made by debootstrap from Debian's
mirror and imported into the engine. In CI on Azure the Dockerfile's default base, the official
slim Python image, is used instead.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devenv import docker
from devenv.process import ServiceError

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Trimmed from the rootfs: caches and docs that only make the image bigger.
PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")


def image_ref() -> str:
    """The tag names what is inside, so a change of package list builds a new image."""
    recipe = "|".join((SUITE, MIRROR, *PACKAGES, *PRUNE)).encode()
    return f"ai-app-base/debian-python:{SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"


def ensure_base_image() -> str:
    """Build the base image once (about a minute); later calls return the existing tag."""
    ref = image_ref()
    if docker.image_exists(ref):
        return ref
    if shutil.which("debootstrap") is None:
        raise ServiceError("debootstrap is not installed: run scripts/bootstrap")
    with tempfile.TemporaryDirectory(prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        print(f"[devenv] debootstrap {SUITE} -> {ref}", file=sys.stderr)
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        for rel in PRUNE:
            target = rootfs / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["python3"]', "-", ref],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ServiceError(f"docker import failed:\n{imported.stderr}")
    return ref


if __name__ == "__main__":
    docker.ensure_engine()
    print(ensure_base_image())
