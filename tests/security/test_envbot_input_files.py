"""Values files and promotion.yaml must be regular files inside the repository: a symbolic link is
refused (never followed, never written through), and model sha256 metadata must be a sha256."""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from bot.errors import BadInput
from tests.bot.envrepo import run_envbot


def test_symlinked_values_file_is_refused_and_not_written_through(fast_repo, oci_images, bot_env, tmp_path):
    outside = tmp_path / "outside.yaml"
    fast_repo.pull()
    dev = fast_repo.work / "environments" / "dev" / "values.yaml"
    outside.write_bytes(dev.read_bytes())
    original = outside.read_bytes()
    dev.unlink()
    os.symlink(outside, dev)
    fast_repo.commit_as_human("dev values live elsewhere")
    before = fast_repo.head()
    proc = run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--json", "--repo", str(fast_repo.remote),
                      env=bot_env, check=False)
    error = json.loads(proc.stdout)
    assert error["kind"] == "bad-input" and "environments/dev/values.yaml" in error["error"]
    assert "symbolic link" in error["error"]
    assert outside.read_bytes() == original and fast_repo.head() == before
    # Reading verbs refuse it too instead of showing the link target as a pin.
    proc = run_envbot("status", "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
    assert json.loads(proc.stdout)["kind"] == "bad-input"


def test_symlinked_promotion_yaml_is_refused(fast_repo, bot_env, tmp_path):
    fast_repo.pull()
    policy = fast_repo.work / "environments" / "promotion.yaml"
    (tmp_path / "policy.yaml").write_bytes(policy.read_bytes())
    policy.unlink()
    os.symlink(tmp_path / "policy.yaml", policy)
    fast_repo.commit_as_human("policy elsewhere")
    proc = run_envbot("status", "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
    error = json.loads(proc.stdout)
    assert error["kind"] == "bad-input" and "promotion.yaml" in error["error"] and "symbolic link" in error["error"]


def test_values_path_outside_the_repository_is_refused(fast_repo, bot_env):
    fast_repo.pull()
    policy = fast_repo.work / "environments" / "promotion.yaml"
    policy.write_text(policy.read_text().replace('values: "{env}/values.yaml"', 'values: "../../{env}.yaml"'))
    fast_repo.commit_as_human("escape")
    proc = run_envbot("status", "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
    assert "must be a relative path inside the repository" in json.loads(proc.stdout)["error"]


@pytest.mark.parametrize("metadata", ["xyz", "", "0" * 63, "g" * 64, "sha256:" + "0" * 63])
def test_blob_sha256_metadata_must_be_a_sha256(azurite, monkeypatch, metadata):
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    from bot.models import resolve_model

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(ResourceExistsError):   # made by an earlier parameter
        service.create_container("envbot-security")
    service.get_blob_client("envbot-security", "m/1/model.onnx").upload_blob(
        b"bytes", overwrite=True, metadata={"sha256": metadata})
    with pytest.raises(BadInput, match="sha256"):
        resolve_model(f"{azurite.blob_endpoint}/envbot-security/m/1/model.onnx")
