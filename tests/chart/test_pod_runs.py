"""The rendered pod runs: the chart's Deployment pod and `helm test` Pod, executed in Docker.

devenv.podrunner translates the rendered pod spec into `docker run` with the same image, user,
read-only root filesystem, dropped capabilities, env and emptyDir volumes. In blob and s3 mode the
init container downloads the model from Azurite or moto S3 (their credentials handed in through a
Secret reference, as a user would with `extraEnvFrom`); in image mode the baked model is verified.
The readiness probe is the rendered one; then one V2 inference, and the chart's own helm test pod.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.modelstore import publish_model
from devenv.podrunner import Pod, PodError, pod_spec_of
from devenv.process import free_port
from tests.chart.helmchart import Rendered, render

pytestmark = pytest.mark.docker

NAMESPACE = "ai-app-test"
STORAGE_SECRET = "model-storage"
# Stand-in for the registry reference the chart renders; the node has the image under a local name.
RENDERED_REPOSITORY = "aiappacr.azurecr.io/ai-app"
RENDERED_TAG = "under-test"


def image_values() -> dict[str, Any]:
    return {"repository": RENDERED_REPOSITORY, "tag": RENDERED_TAG}


def render_for_node(helm_bin: str, values: dict[str, Any]) -> tuple[Rendered, int]:
    """Render with a free port: on the host network it is the pod's port and the Service's."""
    port = free_port()
    base = {"image": image_values(), "server": {"port": port, "workers": 1}, "service": {"port": port}}
    return render(helm_bin, {**base, **values}, namespace=NAMESPACE), port


def call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def infer_iris(port: int, model_name: str) -> dict[str, Any]:
    """One V2 inference with an iris sample shaped from the model's V2 metadata."""
    metadata = call(f"http://127.0.0.1:{port}/v2/models/{model_name}")
    (spec,) = metadata["inputs"]
    inputs = [{"name": spec["name"], "shape": [1, 4], "datatype": spec["datatype"], "data": [5.1, 3.5, 1.4, 0.2]}]
    return call(f"http://127.0.0.1:{port}/v2/models/{model_name}/infer", {"inputs": inputs})


def run_helm_test_pod(rendered: Rendered, images: dict[str, str], state_dir: Path, kind: str = "Pod",
                      expect: str = "ready and inferred") -> None:
    """The chart's `helm test` Pod (or the smoke-check Job's pod), the Service name resolving to the app pod."""
    test_pod = rendered.one(kind)
    service = rendered.one("Service")["metadata"]["name"]
    pod = Pod(pod_spec_of(test_pod), state_dir / kind, name=f"check-{kind.lower()}", images=images,
              hosts={f"{service}.{NAMESPACE}.svc": "127.0.0.1"})
    pod.start()
    try:
        (container,) = pod.containers
        exit_code = pod.wait_exit(container, timeout=180)
        logs = pod.logs(container)
        assert exit_code == 0, logs
        assert expect in logs
    finally:
        pod.stop()


def use_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, kind: str) -> Any:
    """The `models` container on Azurite or bucket on moto S3, its access variables in os.environ."""
    store = request.getfixturevalue(f"{kind}_model_store")
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    return store


@pytest.fixture
def blob_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    return use_store(request, monkeypatch, "azure")


def publish(store: Any, model: Any) -> tuple[str, str]:
    """Publish `model` under a version no other test uses; (version, uri)."""
    version = f"chart-{uuid.uuid4().hex[:8]}"
    uri = store.uri(model.name, version)
    publish_model(model.path, uri)
    return version, uri


@pytest.mark.parametrize(("kind", "source"), [("azure", "blob"), ("s3", "s3")])
def test_fetch_mode_pod_fetches_verifies_and_serves(
    helm_bin: str, app_image: str, trained_models: dict[str, Any], tmp_path: Path,
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, kind: str, source: str,
) -> None:
    store = use_store(request, monkeypatch, kind)
    model = trained_models["iris-logreg"]
    version, uri = publish(store, model)
    rendered, port = render_for_node(helm_bin, {
        "model": {"source": source, "name": model.name, "version": version, "uri": uri, "sha256": model.sha256},
        "extraEnvFrom": [{"secretRef": {"name": STORAGE_SECRET}}],
    })
    images = {f"{RENDERED_REPOSITORY}:{RENDERED_TAG}": app_image}
    spec = pod_spec_of(rendered.deployment())
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-model"]
    # The store's credentials reach the pod the way a user would hand them over: a Secret reference.
    with Pod(spec, tmp_path, name=source, images=images, secrets={STORAGE_SECRET: store.env}) as pod:
        pod.wait_ready(timeout=180)
        assert pod.probe("inference", "liveness")
        result = infer_iris(port, model.name)
        assert result["model_name"] == model.name
        assert result["outputs"]
        run_helm_test_pod(rendered, images, tmp_path)


def test_blob_mode_refuses_a_model_with_another_digest(
    helm_bin: str, app_image: str, blob_store: Any, trained_models: dict[str, Any], tmp_path: Path,
) -> None:
    model = trained_models["iris-logreg"]
    version, uri = publish(blob_store, model)
    wrong = trained_models["iris-forest"].sha256
    rendered, _ = render_for_node(helm_bin, {
        "model": {"source": "blob", "name": model.name, "version": version, "uri": uri, "sha256": wrong},
        "extraEnvFrom": [{"secretRef": {"name": STORAGE_SECRET}}],
    })
    pod = Pod(pod_spec_of(rendered.deployment()), tmp_path, name="blob-bad",
              images={f"{RENDERED_REPOSITORY}:{RENDERED_TAG}": app_image},
              secrets={STORAGE_SECRET: blob_store.env})
    with pytest.raises(PodError, match="fetch-model") as caught:
        pod.start()
    assert not pod.containers  # the app never started
    # fetch-model names the pinned digest it refused.
    assert "exited with 1" in str(caught.value) and wrong in str(caught.value)


def test_image_mode_pod_verifies_the_baked_model_and_serves(
    helm_bin: str, app_image_with_model: str, trained_models: dict[str, Any], tmp_path: Path,
) -> None:
    model = trained_models["iris-logreg"]
    rendered, port = render_for_node(helm_bin, {
        "model": {"source": "image", "name": model.name, "version": str(model.version), "sha256": model.sha256},
    })
    images = {f"{RENDERED_REPOSITORY}:{RENDERED_TAG}": app_image_with_model}
    spec = pod_spec_of(rendered.deployment())
    assert "initContainers" not in spec
    with Pod(spec, tmp_path, name="image", images=images) as pod:
        pod.wait_ready(timeout=180)
        result = infer_iris(port, model.name)
        assert result["outputs"]
        run_helm_test_pod(rendered, images, tmp_path)
        run_helm_test_pod(rendered, images, tmp_path, kind="Job")   # the post-sync smoke check


def test_image_mode_pod_serves_grpc_with_grpc_probes(
    helm_bin: str, app_image_with_model: str, trained_models: dict[str, Any], tmp_path: Path,
) -> None:
    model = trained_models["iris-logreg"]
    grpc_port = free_port()
    rendered, _ = render_for_node(helm_bin, {
        "model": {"source": "image", "name": model.name, "version": str(model.version), "sha256": model.sha256},
        "grpc": {"enabled": True, "port": grpc_port, "servicePort": grpc_port, "probes": {"enabled": True}},
    })
    images = {f"{RENDERED_REPOSITORY}:{RENDERED_TAG}": app_image_with_model}
    spec = pod_spec_of(rendered.deployment())
    (container,) = spec["containers"]
    assert container["readinessProbe"]["grpc"] == {"port": grpc_port, "service": "inference.GRPCInferenceService"}
    with Pod(spec, tmp_path, name="image-grpc", images=images) as pod:
        # Readiness here is the kubelet's grpc probe: grpc.health.v1 Check on the gRPC port.
        pod.wait_ready(timeout=180)
        assert pod.probe("inference", "liveness")
        # The chart's helm test calls REST, then ServerReady, ModelMetadata and ModelInfer over gRPC.
        run_helm_test_pod(rendered, images, tmp_path, expect="gRPC ready and inferred")


def test_image_mode_refuses_a_baked_model_with_another_digest(
    helm_bin: str, app_image_with_model: str, trained_models: dict[str, Any], tmp_path: Path,
) -> None:
    model = trained_models["iris-logreg"]
    rendered, _ = render_for_node(helm_bin, {
        "model": {"source": "image", "name": model.name, "version": str(model.version),
                  "sha256": trained_models["iris-forest"].sha256},
    })
    with Pod(pod_spec_of(rendered.deployment()), tmp_path, name="image-bad",
             images={f"{RENDERED_REPOSITORY}:{RENDERED_TAG}": app_image_with_model}) as pod:
        with pytest.raises(PodError) as caught:
            pod.wait_ready(timeout=60)
        # The server checks the baked file against the pinned digest and stops instead of serving.
        assert "exited before it was ready" in str(caught.value)
        assert trained_models["iris-forest"].sha256 in str(caught.value)
        assert not pod.probe("inference", "readiness")
