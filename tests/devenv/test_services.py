"""The local stand-ins are the real components, reachable only on loopback and over TLS where ACR is."""

from __future__ import annotations

import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

from devenv import process
from devenv.tls import make_server_certificate


def test_registry_serves_oci_api_over_tls_with_its_own_ca(oci_registry) -> None:
    with urllib.request.urlopen(f"{oci_registry.url}/v2/", context=oci_registry.ssl_context()) as resp:
        assert resp.status == 200
        assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    # Without the local CA the certificate is rejected: it is real TLS, not plain http.
    with pytest.raises(urllib.error.URLError) as excinfo:
        urllib.request.urlopen(f"{oci_registry.url}/v2/", context=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(excinfo.value)


def test_registry_listens_on_loopback_only(oci_registry) -> None:
    assert oci_registry.host.startswith("127.0.0.1:")


def test_certificate_is_reused_not_regenerated(tmp_path: Path) -> None:
    first = make_server_certificate(tmp_path)
    ca_bytes = first.ca_file.read_bytes()
    second = make_server_certificate(tmp_path)
    assert second.ca_file.read_bytes() == ca_bytes
    text = subprocess.run(["openssl", "x509", "-in", str(first.cert_file), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in text


def test_azurite_blob_round_trip(azurite) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client("devenv-roundtrip")
    container.create_container()
    container.upload_blob("a/b.txt", b"hello", metadata={"sha256": "x" * 64})
    blob = container.get_blob_client("a/b.txt")
    assert blob.download_blob().readall() == b"hello"
    assert blob.get_blob_properties().metadata["sha256"] == "x" * 64
    assert azurite.blob_endpoint.startswith("http://127.0.0.1:")


def test_moto_s3_round_trip(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="devenv-roundtrip")
    client.put_object(Bucket="devenv-roundtrip", Key="k", Body=b"data")
    assert client.get_object(Bucket="devenv-roundtrip", Key="k")["Body"].read() == b"data"


def test_helm_is_the_v4_binary(helm_bin: str) -> None:
    out = subprocess.run([helm_bin, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("v4."), out


def test_base_image_has_python_311(base_image: str) -> None:
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", base_image, "python3", "-c",
                          "import sys, venv; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(3, 11)"


def test_background_process_reports_early_exit_with_its_log(tmp_path: Path) -> None:
    proc = process.BackgroundProcess("failing", ["sh", "-c", "echo boom-marker; exit 3"], tmp_path / "log")
    with pytest.raises(process.ServiceError) as excinfo:
        proc.start(lambda: False, timeout=10)
    assert "exited with 3" in str(excinfo.value)
    assert "boom-marker" in str(excinfo.value)
