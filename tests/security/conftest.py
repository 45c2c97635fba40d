"""Local stand-ins for the attacks in docs/security.md: a fake helm that records how it was started,
an HTTPS server on 127.0.0.1 that records every request (headers and body), a managed-identity token
endpoint that hands out a canary token, and images pushed (config + manifest, no layers) with
attacker-chosen labels to the real local registry."""

from __future__ import annotations

import json
import os
import ssl
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devenv.oci import OciPusher
from devenv.tls import make_server_certificate
from tests.bot.envrepo import REPO_ROOT

CANARY_TOKEN = "canary-token-3f9a1c"      # what the managed identity hands out
CANARY_ENV = "canary-secret-77d2e0"       # what the job's secret variables hold


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpsRecorder:
    """Answers every request (401 with a registry-style challenge to unauthenticated GETs) and records it."""

    ca_file: Path
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def leaked(self, secret: str) -> list[Recorded]:
        """Requests that carried SECRET anywhere: an Authorization header, another header, the body."""
        return [r for r in self.requests
                if secret in json.dumps(r.headers) or secret.encode() in r.body or secret in r.path]

    def authorizations(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]


@pytest.fixture
def https_recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsRecorder]:
    certs = make_server_certificate(tmp_path_factory.mktemp("recorder-tls"))
    recorder = HttpsRecorder(certs.ca_file)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorder.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                              body))
            if self.command == "GET" and "authorization" not in {k.lower() for k in self.headers}:
                payload = b'{"errors":[{"code":"UNAUTHORIZED"}]}'
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="https://{recorder.host}/oauth2/token",'
                                                     f'service="{recorder.host}",scope="repository:ai-app:pull"')
            else:
                payload = b'{"refresh_token":"r","access_token":"a"}'
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """An App Service-style managed identity endpoint on 127.0.0.1 (IDENTITY_ENDPOINT/IDENTITY_HEADER):
    DefaultAzureCredential gets CANARY_TOKEN from it, with no traffic beyond loopback. Yields the
    resources it issued tokens for."""
    issued: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issued.append(self.path)
            body = json.dumps({"access_token": CANARY_TOKEN, "expires_on": str(int(time.time()) + 3600),
                               "resource": "https://storage.azure.com", "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for key in [k for k in os.environ if k.startswith(("AZURE_", "MSI_", "IDENTITY_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "local-test")
    try:
        yield issued
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class FakeHelm:
    directory: Path          # put first on PATH
    log: Path                # one JSON line per call: {"argv": [...], "env": {...}}

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def fake_helm(tmp_path: Path) -> FakeHelm:
    """`helm` on PATH that records its argv and environment and renders one ConfigMap per call."""
    directory = tmp_path / "fake-helm-bin"
    directory.mkdir()
    log = tmp_path / "fake-helm-calls.jsonl"
    script = directory / "helm"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
with open({str(log)!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
ns = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--namespace=")), "default")
print("---\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: fake\\ndata:\\n  ns: " + ns)
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return FakeHelm(directory, log)


def envbot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An envbot subprocess environment: no forge, Argo CD or cloud variables of the caller, HOME in tmp."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARGOCD_", "GITHUB_", "AZURE_", "AWS_", "SYSTEM_", "ENVBOT_", "IDENTITY_", "MSI_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env |= {"PYTHONPATH": str(REPO_ROOT), "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    env |= extra
    return env


def push_labelled_image(registry_url: str, ca_file: Path, repository: str, tag: str,
                        labels: dict[str, str]) -> str:
    """An image whose config carries LABELS, pushed through the OCI distribution API; its digest."""
    return OciPusher(registry_url, str(ca_file)).push(repository, tag, labels)
