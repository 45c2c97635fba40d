"""Credentials go only to the hosts that own them (docs/security.md, case 3 and the registry rule).

DefaultAzureCredential gets a canary token from a managed-identity endpoint on 127.0.0.1; an HTTPS
server on 127.0.0.1 plays the foreign host a model URI or image reference names, and records every
request. Nothing it records may carry the token.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.credential_scope import ACR, AWS_S3, AZURE_BLOB, credential_refusal
from app.modelstore import ModelStoreError, stat_model
from bot.output import EnvbotError
from tests.bot.envrepo import REPO_ROOT
from tests.security.conftest import CANARY_TOKEN, HttpsRecorder


@pytest.fixture
def foreign_host(https_recorder: HttpsRecorder, managed_identity: list[str], monkeypatch: pytest.MonkeyPatch
                 ) -> HttpsRecorder:
    """The recorder, trusted for TLS (so only the credential rule can stop the token), with no connection string."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_recorder.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(https_recorder.ca_file))
    for key in ("AZURE_STORAGE_CONNECTION_STRING", "MODELSTORE_AZURE_ACCOUNT_URLS", "ENVBOT_REGISTRY_CREDENTIAL_HOSTS"):
        monkeypatch.delenv(key, raising=False)
    return https_recorder


def model_uri(recorder: HttpsRecorder) -> str:
    return f"https://{recorder.host}/attacker/models/iris-logreg/1/model.onnx"


def test_model_store_sends_no_token_to_a_foreign_host(foreign_host: HttpsRecorder) -> None:
    with pytest.raises(ModelStoreError, match=r"refusing to send DefaultAzureCredential \(storage\) to 127\.0\.0\.1"):
        stat_model(model_uri(foreign_host))
    assert foreign_host.leaked(CANARY_TOKEN) == [] and foreign_host.authorizations() == []


def test_envbot_update_model_and_verify_send_no_token(foreign_host: HttpsRecorder) -> None:
    # `envbot update --model URI` resolves the pin with resolve_model, `envbot verify` with check_model.
    from bot.models import check_model, resolve_model
    from bot.values import ModelPin

    with pytest.raises(EnvbotError, match="refusing to send"):
        resolve_model(model_uri(foreign_host))
    pin = ModelPin("blob", "iris-logreg", "1", model_uri(foreign_host), "0" * 64)
    with pytest.raises(EnvbotError, match="refusing to send"):
        check_model(pin, deep=True)
    assert foreign_host.leaked(CANARY_TOKEN) == [] and foreign_host.authorizations() == []


def test_model_watch_sends_no_token(foreign_host: HttpsRecorder, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT / "pipelines" / "scripts"))
    try:
        import model_watch
    finally:
        sys.path.pop(0)
    values = tmp_path / "values.yaml"
    values.write_text(f"model:\n  uri: {model_uri(foreign_host)}\n")
    assert model_watch.main(["--values", str(values)]) == 1
    assert foreign_host.leaked(CANARY_TOKEN) == [] and foreign_host.authorizations() == []


@pytest.mark.parametrize("registry", ["{host}#.azurecr.io", "{host}?.azurecr.io"])
def test_registry_token_goes_only_to_the_registry_named(foreign_host: HttpsRecorder, registry: str) -> None:
    from bot.registry import RegistryClient, parse_image_ref

    with pytest.raises(EnvbotError):
        RegistryClient().resolve(parse_image_ref(f"{registry.format(host=foreign_host.host)}/ai-app:v1"))
    assert foreign_host.leaked(CANARY_TOKEN) == []


def test_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MODELSTORE_AZURE_ACCOUNT_URLS", "ENVBOT_REGISTRY_CREDENTIAL_HOSTS", "MODELSTORE_S3_ENDPOINTS",
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    allowed = [(AZURE_BLOB, "https://acct.blob.core.windows.net"), (AZURE_BLOB, "https://acct.blob.core.chinacloudapi.cn"),
               (AZURE_BLOB, "https://acct.blob.core.usgovcloudapi.net"), (AZURE_BLOB, "https://acct.z07.blob.storage.azure.net"),
               (ACR, "myacr.azurecr.io"), (ACR, "myacr.azurecr.cn"),
               (AWS_S3, "https://s3.eu-west-1.amazonaws.com"), (AWS_S3, "https://s3.cn-north-1.amazonaws.com.cn")]
    refused = [(AZURE_BLOB, "https://acct.blob.core.windows.net.evil.example"),
               (AZURE_BLOB, "http://acct.blob.core.windows.net"), (AZURE_BLOB, "https://127.0.0.1:10000/devstoreaccount1"),
               (AZURE_BLOB, "https://evil.example/acct"), (ACR, "myacr.azurecr.io:8443"), (ACR, "evil.example"),
               (ACR, "azurecr.io.evil.example"), (AWS_S3, "https://evil.example"), (AWS_S3, "http://127.0.0.1:5000"),
               (AWS_S3, "https://amazonaws.com.evil.example")]
    assert [(s.credential, u) for s, u in allowed if credential_refusal(s, u)] == []
    assert [(s.credential, u) for s, u in refused if not credential_refusal(s, u)] == []
    # An operator's explicit allowlist, and the S3 endpoint the operator configured.
    monkeypatch.setenv("MODELSTORE_AZURE_ACCOUNT_URLS", "https://models.example.com/acct")
    assert credential_refusal(AZURE_BLOB, "https://models.example.com/acct") is None
    assert credential_refusal(AZURE_BLOB, "https://models.example.com/other")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert credential_refusal(AWS_S3, "http://127.0.0.1:5000") is None


def test_s3_keys_are_not_signed_for_a_foreign_endpoint(https_recorder: HttpsRecorder, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # An endpoint from a shared AWS config file (not the operator's AWS_ENDPOINT_URL) is not trusted.
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = us-east-1\nendpoint_url = https://{https_recorder.host}\n")
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "MODELSTORE_S3_ENDPOINTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_TOKEN)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(https_recorder.ca_file))
    with pytest.raises(ModelStoreError, match="refusing to send AWS credentials"):
        stat_model("s3://models/iris-logreg/1/model.onnx")
    assert https_recorder.requests == []
