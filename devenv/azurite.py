"""Azurite's Blob service (from npm, pinned by devenv/package-lock.json) standing in for Azure Blob."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from devenv import REPO_ROOT
from devenv.process import BackgroundProcess, LocalService, ServiceError, free_port, port_open

ACCOUNT = "devstoreaccount1"
# Azurite's published development account key (not a secret; the same in every Azurite).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BINARY = REPO_ROOT / "devenv" / "node_modules" / ".bin" / "azurite-blob"


@dataclass
class Azurite(LocalService):
    port: int
    process: BackgroundProcess = field(repr=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )



def start(state_dir: Path, port: int | None = None) -> Azurite:
    if not BINARY.exists():
        raise ServiceError(f"Azurite is not installed ({BINARY.relative_to(REPO_ROOT)}): run scripts/bootstrap")
    port = port or free_port()
    data = state_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    process = BackgroundProcess(
        "azurite-blob",
        [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--disableTelemetry",
         "--skipApiVersionCheck", "--location", str(data)],
        state_dir / "azurite.log",
    )
    process.start(lambda: port_open(port), timeout=60)
    return Azurite(port=port, process=process)
