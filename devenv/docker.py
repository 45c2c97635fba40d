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


# `python -m devenv.docker start|stop-if-started`: scripts/test starts one engine for all its test
# tiers (so no tier stops it under another) and stops it at the end only if it started it.
_PID_FILE = STATE_DIR / "dockerd.pid"


def _main(argv: list[str]) -> int:
    import os
    import signal
    import sys

    if argv == ["start"]:
        started = ensure_engine()
        if started is not None and started.proc is not None:
            _PID_FILE.write_text(str(started.proc.pid))
        return 0
    if argv == ["stop-if-started"]:
        if not _PID_FILE.is_file():
            return 0
        pid = int(_PID_FILE.read_text())
        _PID_FILE.unlink()
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return 0
        for _ in range(100):   # up to 20 s for a clean shutdown, as BackgroundProcess.stop allows
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return 0
            import time

            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
        return 0
    print("usage: python -m devenv.docker start|stop-if-started", file=sys.stderr)
    return 2


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
