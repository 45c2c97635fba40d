"""fetch-model against real Azurite and moto S3: atomic, idempotent, verified, resumable, quiet off a TTY."""

from __future__ import annotations

import array
import fcntl
import http.client
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.modelstore import DigestMismatch, ModelNotFound, ModelStoreError, fetch_model, parse_uri, publish_model
from app.modelstore.digest import file_sha256
from app.training import TrainedModel
from tests.fixtures.models import ModelStore

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 MiB of incompressible bytes: several download chunks, so resuming shows."""
    path = tmp_path_factory.mktemp("large") / "model.onnx"
    path.write_bytes(os.urandom(20 * MIB))
    return path


def test_fetch_writes_only_the_model_and_its_card(model_store: ModelStore, trained_models: dict[str, TrainedModel],
                                      tmp_path: Path) -> None:
    model = trained_models["iris-forest"]
    uri = model_store.unique_uri("iris-forest")
    publish_model(model.path, uri)
    dest = tmp_path / "models"
    path = fetch_model(uri, model.sha256, dest)
    assert path == dest / "model.onnx"
    assert path.read_bytes() == model.path.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["model.card.json", "model.onnx"]
    assert path.stat().st_mode & 0o777 == 0o644
    assert (dest / "model.card.json").stat().st_mode & 0o777 == 0o644


def test_fetch_is_a_no_op_when_the_digest_is_present(
    model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("iris-logreg")
    publish_model(model.path, uri)
    path = fetch_model(uri, model.sha256, tmp_path)
    before = path.stat()
    # The same model at an address where nothing listens: only a fetch that skips the store succeeds.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead_uri = (f"http://127.0.0.1:{dead_port}/devstoreaccount1/models/{parse_uri(uri).key}"
                if model_store.kind == "azure" else uri)
    if model_store.kind == "s3":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead_port}")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    assert fetch_model(dead_uri, model.sha256.upper(), tmp_path) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_fetch_replaces_a_different_model(model_store: ModelStore, trained_models: dict[str, TrainedModel],
                                          tmp_path: Path) -> None:
    model = trained_models["iris-forest"]
    uri = model_store.unique_uri("iris-forest")
    publish_model(model.path, uri)
    (tmp_path / "model.onnx").write_bytes(trained_models["iris-logreg"].path.read_bytes())
    fetch_model(uri, model.sha256, tmp_path)
    assert file_sha256(tmp_path / "model.onnx") == model.sha256


def test_pinned_digest_different_from_the_store_is_refused_before_download(
    model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    uri = model_store.unique_uri("iris")
    published = publish_model(trained_models["iris-logreg"].path, uri)
    pinned = trained_models["iris-forest"].sha256
    with pytest.raises(ModelStoreError, match=f"records sha256 {published.sha256} but {pinned} was pinned"):
        fetch_model(uri, pinned, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def _put_raw(store: ModelStore, uri: str, data: bytes, recorded_sha256: str) -> None:
    """Store bytes whose metadata claims another digest: what a corrupted or tampered object looks like."""
    location = parse_uri(uri)
    if store.kind == "azure":
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(store.env["AZURE_STORAGE_CONNECTION_STRING"])
        blob = service.get_blob_client(location.container, location.key)
        blob.upload_blob(data, metadata={"sha256": recorded_sha256})
    else:
        import boto3

        boto3.client("s3").put_object(Bucket=location.container, Key=location.key, Body=data,
                                      Metadata={"sha256": recorded_sha256})


def test_content_mismatch_fails_naming_both_digests_and_leaves_nothing(
    model_store: ModelStore, trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("tampered")
    tampered = model.path.read_bytes() + b"\0"
    _put_raw(model_store, uri, tampered, model.sha256)
    dest = tmp_path / "models"
    with pytest.raises(DigestMismatch) as caught:
        fetch_model(uri, model.sha256, dest)
    import hashlib

    assert caught.value.expected == model.sha256
    assert caught.value.actual == hashlib.sha256(tampered).hexdigest()
    assert f"expected {model.sha256}, got {caught.value.actual}" in str(caught.value)
    assert list(dest.iterdir()) == []


def test_missing_model_is_not_found_and_leaves_nothing(model_store: ModelStore, tmp_path: Path) -> None:
    uri = model_store.unique_uri("absent")
    with pytest.raises(ModelNotFound, match=f"^{uri}: "):
        fetch_model(uri, "0" * 64, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_pinned_digest_is_refused(model_store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="--sha256: expected 64 hexadecimal characters, got 'abc'"):
        fetch_model(model_store.unique_uri(), "abc", tmp_path)


def test_stale_partial_files_are_cleaned_up(model_store: ModelStore, trained_models: dict[str, TrainedModel],
                                            tmp_path: Path) -> None:
    model = trained_models["iris-logreg"]
    uri = model_store.unique_uri("iris-logreg")
    publish_model(model.path, uri)
    (tmp_path / ".model.onnx.x1y2.partial").write_bytes(b"left by a killed fetch")
    fetch_model(uri, model.sha256, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.card.json", "model.onnx"]


class FaultyProxy(ThreadingHTTPServer):
    """A reverse proxy in front of Azurite or moto that breaks the first object downloads on purpose.

    `faults` is consumed one per GET of the object: "503" answers 503 Service Unavailable;
    "reset" forwards the status, the headers and half the body, then resets the TCP connection;
    "pass" forwards. Every GET's Range header is recorded.
    """

    daemon_threads = True

    def __init__(self, upstream: str, faults: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.faults = list(faults)
        self.ranges: list[str | None] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _wait_until_read(sock: socket.socket, timeout: float = 10.0) -> None:
    """Wait until the client has the bytes written so far, before the reset.

    A reset discards what the client's kernel has received but the client has not read yet, so
    resetting right after the write makes how much arrived a race. Wait until the send queue is
    empty (everything acknowledged), then give the reading client a moment to drain its buffer.
    """
    unsent = array.array("i", [0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, unsent)
        if unsent[0] == 0:
            break
        time.sleep(0.005)
    time.sleep(0.3)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultyProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        connection = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=60)
        try:
            connection.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.ranges.append(self.headers.get("x-ms-range") or self.headers.get("Range"))
            fault = self.server.faults.pop(0) if self.server.faults else None
        if fault == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, headers, payload = self._forward()
        self.send_response_only(status)
        for key, value in headers:
            if key.lower() not in ("transfer-encoding", "connection"):
                self.send_header(key, value)
        self.end_headers()
        if fault == "reset":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            _wait_until_read(self.connection)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def do_HEAD(self) -> None:
        status, headers, _ = self._forward()
        self.send_response_only(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()


@pytest.fixture
def faulty_proxy(model_store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyProxy]:
    upstream = model_store.env.get("AWS_ENDPOINT_URL") or parse_uri(model_store.uri("x")).account_url
    proxy = FaultyProxy(upstream, [])
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    if model_store.kind == "s3":
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    else:
        connection_string = model_store.env["AZURE_STORAGE_CONNECTION_STRING"]
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                           connection_string.replace(upstream.rsplit("/", 1)[0], proxy.url))
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_transient_failures_are_retried_and_resumed(
    model_store: ModelStore, faulty_proxy: FaultyProxy, large_file: Path, tmp_path: Path
) -> None:
    uri = model_store.unique_uri("large")
    sha256 = file_sha256(large_file)
    with pytest.MonkeyPatch.context() as direct:  # publish straight to the store, not through the proxy
        for key, value in model_store.env.items():
            direct.setenv(key, value)
        publish_model(large_file, uri, with_card=False)
    proxied_uri = uri if model_store.kind == "s3" else uri.replace(
        parse_uri(uri).account_url.rsplit("/", 1)[0], faulty_proxy.url)

    if model_store.kind == "s3":
        # One GET streams the whole object: the reset comes after the first 8 MiB chunk arrived.
        faulty_proxy.faults = ["503", "reset", "503"]
    else:
        # One GET per 8 MiB chunk; the SDK retries a broken chunk 3 times itself before giving up.
        faulty_proxy.faults = ["503", "pass", "reset", "reset", "reset", "503"]

    path = fetch_model(proxied_uri, sha256, tmp_path, backoff=0.01)

    assert file_sha256(path) == sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert faulty_proxy.faults == []  # every fault was served
    # Once the first 8 MiB arrived, no request starts over from byte 0: the download resumes.
    later = faulty_proxy.ranges[2:]
    assert [r for r in later if r is None or r.startswith("bytes=0-")] == [], faulty_proxy.ranges
    assert any(r.startswith(f"bytes={8 * MIB}-") for r in later), faulty_proxy.ranges


def test_persistent_failures_give_up_cleanly(
    model_store: ModelStore, faulty_proxy: FaultyProxy, trained_models: dict[str, TrainedModel], tmp_path: Path
) -> None:
    model = trained_models["iris-forest"]
    uri = model_store.unique_uri("down")
    with pytest.MonkeyPatch.context() as direct:
        for key, value in model_store.env.items():
            direct.setenv(key, value)
        publish_model(model.path, uri)
    faulty_proxy.faults = ["503"] * 10
    proxied_uri = uri if model_store.kind == "s3" else uri.replace(
        parse_uri(uri).account_url.rsplit("/", 1)[0], faulty_proxy.url)
    with pytest.raises(ModelStoreError, match=r"HTTP 503 .*\(gave up after 3 attempts\)"):
        fetch_model(proxied_uri, model.sha256, tmp_path, attempts=3, backoff=0.01)
    assert list(tmp_path.iterdir()) == []


def _fetch_cli(store: ModelStore, uri: str, sha256: str, dest: Path, tty: bool) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "app", "fetch-model", "--uri", uri, "--sha256", sha256, "--dest", str(dest)]
    env = {**os.environ, **store.env}
    if not tty:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
        return done.returncode, done.stdout, done.stderr
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal, text=True, env=env, cwd=REPO_ROOT)
    os.close(terminal)
    captured = b""
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        captured += data
    stdout = proc.stdout.read() if proc.stdout else ""
    proc.wait()
    os.close(controller)
    return proc.returncode, stdout, captured.decode(errors="replace")


def test_cli_shows_progress_only_on_a_terminal(model_store: ModelStore, large_file: Path, tmp_path: Path) -> None:
    uri = model_store.unique_uri("progress")
    sha256 = publish_model(large_file, uri, with_card=False).sha256

    code, stdout, stderr = _fetch_cli(model_store, uri, sha256, tmp_path / "tty", tty=True)
    assert code == 0, stderr
    assert "20.0 / 20.0 MiB (100%)" in stderr
    assert stdout == f"{tmp_path / 'tty' / 'model.onnx'} sha256:{sha256}\n"

    code, stdout, stderr = _fetch_cli(model_store, uri, sha256, tmp_path / "pipe", tty=False)
    assert code == 0, stderr
    assert "MiB (" not in stderr
    assert '"message":"model fetched"' in stderr  # the JSON log line, for the cluster's log pipeline


def test_cli_mismatch_exits_non_zero(model_store: ModelStore, trained_models: dict[str, TrainedModel],
                                     tmp_path: Path) -> None:
    uri = model_store.unique_uri("iris")
    publish_model(trained_models["iris-logreg"].path, uri)
    code, stdout, stderr = _fetch_cli(model_store, uri, trained_models["iris-forest"].sha256, tmp_path, tty=False)
    assert code == 1
    assert stdout == ""
    assert f"ai-app fetch-model: {uri}: the store records sha256" in stderr
    assert list(tmp_path.iterdir()) == []
