"""`envbot dashboard` started in the background on 127.0.0.1 (the browser tests and the local delivery run)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from devenv.process import BackgroundProcess, LocalService, free_port


class Dashboard(LocalService):
    def __init__(self, process: BackgroundProcess, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


def start(repo: str, log_file: Path, extra_args: Sequence[str] = (), env: dict[str, str] | None = None,
          timeout: float = 120.0) -> Dashboard:
    """Serve the dashboard of the environments repo REPO; returns once /healthz answers (repo cloned)."""
    port = free_port()
    envbot = Path(sys.executable).with_name("envbot")
    argv = [str(envbot), "dashboard", "--repo", repo, "--host", "127.0.0.1", "--port", str(port), *extra_args]
    process = BackgroundProcess("envbot dashboard", argv, log_file, env=env)
    service = Dashboard(process, port)
    process.start(service.answers, timeout=timeout)
    return service
