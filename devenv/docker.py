"""The Docker engine: use the running one, or start Debian's dockerd on its unix socket."""

from __future__ import annotations

import shutil
import subprocess

from devenv import STATE_DIR
from devenv.process import BackgroundProcess, ServiceError


def engine_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_engine(timeout: float = 60.0) -> BackgroundProcess | None:
    """Make sure `docker` talks to an engine.

    Returns the dockerd process when this call started it (stop it when done), None when an
    engine was already running.
    """
    if engine_running():
        return None
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ServiceError("dockerd is not installed: run scripts/bootstrap (installs Debian's docker.io)")
    # Unix socket only: the engine is reachable from this machine alone.
    proc = BackgroundProcess(
        "dockerd", [dockerd, "--host", "unix:///var/run/docker.sock"], STATE_DIR / "logs" / "dockerd.log"
    )
    proc.start(engine_running, timeout=timeout)
    return proc


def run(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """`docker ARGS`, raising with docker's own message when it fails."""
    result = subprocess.run(["docker", *args], capture_output=capture, text=True)
    if check and result.returncode != 0:
        raise ServiceError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def image_exists(ref: str) -> bool:
    return run("image", "inspect", ref, check=False).returncode == 0
