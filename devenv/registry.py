"""An OCI registry over TLS standing in for Azure Container Registry (Debian's docker-registry).

It serves the OCI distribution API (/v2) that `docker push` and the azure-containerregistry SDK's
get_manifest/download_blob use; the ACR-only /acr/v1 APIs do not exist here.
"""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devenv.process import BackgroundProcess, LocalService, ServiceError, free_port
from devenv.tls import make_server_certificate


@dataclass
class Registry(LocalService):
    port: int
    ca_file: Path
    process: BackgroundProcess = field(repr=False)

    @property
    def host(self) -> str:
        """What image references start with: 127.0.0.1:PORT."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", context=self.ssl_context(), timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def tags(self, repository: str) -> list[str]:
        with urllib.request.urlopen(f"{self.url}/v2/{repository}/tags/list", context=self.ssl_context()) as resp:
            return json.load(resp).get("tags") or []



def start(state_dir: Path, port: int | None = None) -> Registry:
    """Start a registry on 127.0.0.1 storing its blobs under STATE_DIR."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise ServiceError("docker-registry is not installed: run scripts/bootstrap")
    port = port or free_port()
    certs = make_server_certificate(state_dir / "tls")
    storage = state_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = state_dir / "config.yml"
    # JSON is YAML: no YAML writer needed for the registry's config.
    config.write_text(json.dumps({
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "tls": {"certificate": str(certs.cert_file), "key": str(certs.key_file)},
        },
    }, indent=2))
    process = BackgroundProcess("docker-registry", [binary, "serve", str(config)], state_dir / "registry.log")
    registry = Registry(port=port, ca_file=certs.ca_file, process=process)
    process.start(registry.answers, timeout=30)
    return registry
