"""The chart's memory limit holds the worst case its server defaults allow: maximum-size requests on
every app thread of every worker at once (and more waiting), in a container limited to the chart's memory (docker
--memory, through devenv.podrunner), with no worker or container killed for memory.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from app.config import Settings
from devenv import docker
from devenv.podrunner import Pod, memory_bytes, pod_spec_of
from devenv.process import free_port
from tests.chart.helmchart import CHART_DIR, load_yaml, render
from tests.chart.test_pod_runs import NAMESPACE, RENDERED_REPOSITORY, RENDERED_TAG, image_values

pytestmark = pytest.mark.docker

VALUES = load_yaml(CHART_DIR / "values.yaml")
ROW = "5.1,3.5,1.4,0.2"


def iris_body(rows: int) -> bytes:
    data = ",".join([ROW] * rows)
    return f'{{"inputs":[{{"name":"input","shape":[{rows},4],"datatype":"FP32","data":[{data}]}}]}}'.encode()


def largest_accepted_rows() -> int:
    """Rows of the largest iris request within both MAX_REQUEST_BYTES and MAX_RESPONSE_BYTES."""
    settings = Settings()
    by_request = (settings.MAX_REQUEST_BYTES - 200) // (len(ROW) + 1)
    # Response bound per row: an INT64 label (21 bytes) and three FP32 probabilities (16 bytes each).
    by_response = (settings.MAX_RESPONSE_BYTES - 1000) // (21 + 3 * 16)
    return min(by_request, by_response)


def test_max_size_requests_on_every_thread_fit_the_chart_memory_limit(
    helm_bin: str, app_image_with_model: str, trained_models: dict[str, Any], tmp_path: Path
) -> None:
    model = trained_models["iris-logreg"]
    # The chart's defaults for workers, threads and resources: only the port and model differ.
    port = free_port()
    rendered = render(helm_bin, {
        "image": image_values(),
        "model": {"source": "image", "name": model.name, "version": str(model.version), "sha256": model.sha256},
        "server": {"port": port},
        "service": {"port": port},
    }, namespace=NAMESPACE)
    spec = pod_spec_of(rendered.deployment())
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    workers, threads = int(env["WEB_CONCURRENCY"]), int(env["WEB_THREADS"])
    assert (workers, threads) == (VALUES["server"]["workers"], VALUES["server"]["threads"])
    limit = memory_bytes(container["resources"]["limits"]["memory"])

    accepted = iris_body(largest_accepted_rows())
    refused = iris_body(largest_accepted_rows() + 50_000)  # over MAX_RESPONSE_BYTES: 413 after inference
    url = f"http://127.0.0.1:{port}/v2/models/{model.name}/infer"
    images = {f"{RENDERED_REPOSITORY}:{RENDERED_TAG}": app_image_with_model}
    with Pod(spec, tmp_path, name="memory", images=images) as pod:
        pod.wait_ready(timeout=180)
        statuses: list[int | str] = []

        def send(body: bytes) -> None:
            try:
                response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=600)
                statuses.append(response.status_code)
            except requests.RequestException as exc:
                statuses.append(type(exc).__name__)

        # At least the 8 at once that OOM-killed workers before (issue 12); those beyond workers x threads wait.
        at_once = max(8, workers * threads * 2)
        for round_bodies in ([accepted] * at_once, [refused] * at_once):
            senders = [threading.Thread(target=send, args=(body,)) for body in round_bodies]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()

        state = json.loads(docker.run("inspect", "--format", "{{json .State}}", pod.containers["inference"]).stdout)
        # cgroup v2 names the high-water mark memory.peak; v1 memory.max_usage_in_bytes.
        peak = docker.run(
            "exec", pod.containers["inference"], "cat",
            "/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes", check=False,
        )
        logs = pod.logs("inference")
        print(f"\ncontainer memory peak {peak.stdout.strip() or '(not available)'} bytes of {limit} (limit)")
        assert statuses.count(200) == at_once, statuses
        assert statuses.count(413) == at_once, statuses
        assert not state["OOMKilled"] and state["Running"]
        assert "Unexpected exit from worker" not in logs
        assert requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=10).status_code == 200
