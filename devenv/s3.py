"""moto's server standing in for S3, the model store's alternative backend."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devenv.process import BackgroundProcess, LocalService, ServiceError, free_port, port_open


@dataclass
class MotoS3(LocalService):
    port: int
    process: BackgroundProcess = field(repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables boto3 reads, pointed at this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }



def start(state_dir: Path, port: int | None = None) -> MotoS3:
    binary = Path(sys.prefix) / "bin" / "moto_server"
    if not binary.exists():
        found = shutil.which("moto_server")
        if found is None:
            raise ServiceError("moto_server is not installed: run scripts/bootstrap")
        binary = Path(found)
    port = port or free_port()
    process = BackgroundProcess("moto_server", [str(binary), "-H", "127.0.0.1", "-p", str(port)],
                                state_dir / "moto.log")
    process.start(lambda: port_open(port), timeout=60)
    return MotoS3(port=port, process=process)
