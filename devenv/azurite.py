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


def main(argv: list[str] | None = None) -> int:
    """`python -m devenv.azurite STATE_DIR`: Azurite for a person at a shell (the docs' walkthrough).

    Starts it on a free 127.0.0.1 port with a `models` container, then writes STATE_DIR/env (the
    variables publish-model, fetch-model and envbot read, and MODELS, the container's URL) in one
    rename, so a reader waiting for that file never sees half of it; serves until SIGTERM or Ctrl-C.
    """
    import argparse
    import contextlib
    import os
    import signal
    import threading

    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    parser = argparse.ArgumentParser(prog="python -m devenv.azurite", description=main.__doc__.splitlines()[0])
    parser.add_argument("state_dir", type=Path, help="Azurite's data, its log and the env file go here")
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    env_file = args.state_dir / "env"
    env_file.unlink(missing_ok=True)   # a previous run's port must not be read as this one's
    stopped = threading.Event()   # set before Azurite starts: a SIGTERM during the start still stops it
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    azurite = start(args.state_dir)
    try:
        with contextlib.suppress(ResourceExistsError):   # a state directory used before keeps its data
            BlobServiceClient.from_connection_string(azurite.connection_string).create_container("models")
        partial = env_file.with_suffix(".partial")
        partial.write_text(f"export AZURE_STORAGE_CONNECTION_STRING='{azurite.connection_string}'\n"
                           f"export MODELS='{azurite.blob_endpoint}/models'\n")
        os.replace(partial, env_file)
        print(f"Azurite on {azurite.blob_endpoint}; variables in {env_file}", flush=True)
        while not stopped.wait(1):
            pass
    finally:
        azurite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
