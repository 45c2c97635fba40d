"""envbot fixtures: images pushed to the TLS registry, models published to Azurite, an environments remote."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.values import ImagePin, ModelPin, ReleasePin
from tests.bot.envrepo import REPO_ROOT, EnvRepo, git, make_env_repo


@dataclass(frozen=True)
class PushedImage:
    name: str            # 127.0.0.1:PORT/ai-app
    tag: str
    digest: str
    revision: str        # org.opencontainers.image.revision label

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class SourceRepo:
    path: Path
    commits: list[str]   # oldest first
    subjects: list[str]


def build_and_push(base_image: str, name: str, tag: str, labels: dict[str, str]) -> str:
    """A tiny image FROM the base with LABELs (no layers of its own), pushed; returns its digest."""
    label_args = " ".join(f'{k}="{v}"' for k, v in labels.items())
    dockerfile = f"FROM {base_image}\nLABEL {label_args}\n"
    subprocess.run(["docker", "build", "-q", "-t", f"{name}:{tag}", "-"], input=dockerfile, text=True,
                   check=True, capture_output=True)
    subprocess.run(["docker", "push", "-q", f"{name}:{tag}"], check=True, capture_output=True, text=True)
    repo_digests = subprocess.run(["docker", "inspect", "--format", "{{json .RepoDigests}}", f"{name}:{tag}"],
                                  check=True, capture_output=True, text=True).stdout
    import json

    return next(d.split("@")[1] for d in json.loads(repo_digests) if d.startswith(name + "@"))


@pytest.fixture(scope="session")
def source_repo(tmp_path_factory: pytest.TempPathFactory) -> SourceRepo:
    path = tmp_path_factory.mktemp("source") / "ai-app-src"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commits, subjects = [], []
    for index in range(5):
        (path / "app.txt").write_text(f"change {index}\n")
        subject = f"app: change number {index}"
        git(path, "add", "app.txt")
        git(path, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", subject)
        commits.append(git(path, "rev-parse", "HEAD"))
        subjects.append(subject)
    return SourceRepo(path, commits, subjects)


@pytest.fixture(scope="session")
def images(oci_registry, base_image: str, source_repo: SourceRepo) -> dict[str, PushedImage]:
    """ai-app:v1 (source commit 0), v2 (commit 2), v3 (commit 4) in the registry, labelled like CI does."""
    name = f"{oci_registry.host}/ai-app"
    pushed = {}
    for tag, index in (("v1", 0), ("v2", 2), ("v3", 4)):
        revision = source_repo.commits[index]
        digest = build_and_push(base_image, name, tag, {
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.source": source_repo.path.as_uri(),
        })
        pushed[tag] = PushedImage(name, tag, digest, revision)
    return pushed


@dataclass(frozen=True)
class PublishedModel:
    uri: str
    sha256: str
    version: str


@pytest.fixture(scope="session")
def models(azurite, trained_models) -> dict[str, PublishedModel]:
    """iris-logreg versions 1 and 2 (different bytes) published to Azurite with publish_model."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    from app.modelstore import publish_model

    with contextlib.suppress(ResourceExistsError):
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container("envbot-models")

    previous = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    try:
        published = {}
        for version, source in (("1", "iris-logreg"), ("2", "iris-forest")):
            uri = f"{azurite.blob_endpoint}/envbot-models/iris-logreg/{version}/model.onnx"
            info = publish_model(trained_models[source].path, uri)
            published[version] = PublishedModel(uri, info.sha256, version)
        return published
    finally:
        if previous is None:
            os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
        else:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = previous


@pytest.fixture
def bot_env(oci_registry, azurite, helm_bin: str, tmp_path: Path) -> dict[str, str]:
    """Environment of an envbot subprocess: trusts the registry CA, reaches Azurite, no forge or Argo CD."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARGOCD_", "GITHUB_", "AZURE_DEVOPS_", "SYSTEM_ACCESSTOKEN", "ENVBOT_"))}
    env |= {
        "REQUESTS_CA_BUNDLE": str(oci_registry.ca_file),
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "ENVBOT_HELM": helm_bin,
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": str(tmp_path),   # no user git config leaks in
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return env


def release(image: PushedImage, model: PublishedModel) -> ReleasePin:
    return ReleasePin(ImagePin(image.name, image.tag, image.digest),
                      ModelPin("blob", "iris-logreg", model.version, model.uri, model.sha256))


@pytest.fixture
def initial_pins(images: dict[str, PushedImage], models: dict[str, PublishedModel]) -> dict[str, ReleasePin]:
    """dev and staging run v2 with model 2, prod runs v1 with model 1 (all landed long ago)."""
    return {"dev": release(images["v2"], models["2"]), "staging": release(images["v2"], models["2"]),
            "prod": release(images["v1"], models["1"])}


@pytest.fixture
def env_repo(tmp_path: Path, initial_pins: dict[str, ReleasePin]) -> Iterator[EnvRepo]:
    yield make_env_repo(tmp_path, pins=initial_pins)


# The fast tier: images pushed through the registry's /v2 API (tests/fixtures/oci.py), no Docker engine.
@pytest.fixture(scope="session")
def oci_pusher(oci_registry):
    from tests.fixtures.oci import OciPusher

    return OciPusher(oci_registry.url, str(oci_registry.ca_file))


@pytest.fixture(scope="session")
def oci_images(oci_registry, oci_pusher, source_repo: SourceRepo) -> dict[str, PushedImage]:
    """fast/ai-app:v1 (source commit 0), v2 (commit 2), v3 (commit 4), labelled like CI does."""
    name = f"{oci_registry.host}/fast/ai-app"
    pushed = {}
    for tag, index in (("v1", 0), ("v2", 2), ("v3", 4)):
        revision = source_repo.commits[index]
        digest = oci_pusher.push("fast/ai-app", tag, {"org.opencontainers.image.revision": revision,
                                                      "org.opencontainers.image.source": source_repo.path.as_uri()})
        pushed[tag] = PushedImage(name, tag, digest, revision)
    return pushed


@pytest.fixture
def fast_pins(oci_images: dict[str, PushedImage], models: dict[str, PublishedModel]) -> dict[str, ReleasePin]:
    """Like initial_pins, with images pushed without Docker."""
    return {"dev": release(oci_images["v2"], models["2"]), "staging": release(oci_images["v2"], models["2"]),
            "prod": release(oci_images["v1"], models["1"])}


@pytest.fixture
def fast_repo(tmp_path: Path, fast_pins: dict[str, ReleasePin]) -> Iterator[EnvRepo]:
    yield make_env_repo(tmp_path, pins=fast_pins)
