"""list_versions: the versions published beside a model, in natural order, against Azurite and moto S3."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.modelstore import ModelNotFound, list_versions, publish_model, version_key
from tests.fixtures.models import ModelStore


def test_versions_compare_naturally() -> None:
    assert sorted(["10", "9", "2", "1.10", "1.9"], key=version_key) == ["1.9", "1.10", "2", "9", "10"]
    assert version_key("2024-06-01") > version_key("2024-05-31")


def test_lists_the_published_versions_of_one_model(model_store: ModelStore, tmp_path: Path) -> None:
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"not really onnx, but bytes with a digest")
    name = f"watched-{uuid.uuid4().hex[:8]}"
    for version in ("1", "10", "2"):
        publish_model(model_file, model_store.uri(name, version), with_card=False)
    # Models whose names start with this one's are other models.
    publish_model(model_file, model_store.uri(f"{name}-other", "99"), with_card=False)
    publish_model(model_file, model_store.uri(f"{name}x", "50"), with_card=False)
    assert list_versions(model_store.uri(name, "1")) == ["1", "2", "10"]


def test_a_model_with_no_published_version_has_none(model_store: ModelStore) -> None:
    assert list_versions(model_store.unique_uri("never-published")) == []


def test_a_missing_container_is_not_found(model_store: ModelStore) -> None:
    uri = model_store.uri("m").replace("/models/", "/no-such-container/")
    with pytest.raises(ModelNotFound, match="no-such-container"):
        list_versions(uri)
