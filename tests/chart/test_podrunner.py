"""devenv.podrunner's translation of a rendered pod spec into `docker run` options."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.podrunner import Pod, PodError, cpu_cores, memory_bytes, pod_spec_of
from tests.chart.helmchart import MODEL_SHA256, render

BLOB = {"source": "blob", "sha256": MODEL_SHA256,
        "uri": "https://aiappmodels.blob.core.windows.net/models/iris-logreg/1/model.onnx"}


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


@pytest.mark.parametrize(("quantity", "expected"), [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1G", 10**9),
                                                     (1048576, 2**20), ("1.5Gi", 3 * 2**29)])
def test_memory_quantities(quantity: str | int, expected: int) -> None:
    assert memory_bytes(quantity) == expected


@pytest.mark.parametrize(("quantity", "expected"), [("250m", 0.25), ("2", 2.0), (1, 1.0), ("1500m", 1.5)])
def test_cpu_quantities(quantity: str | int, expected: float) -> None:
    assert cpu_cores(quantity) == expected


def test_rendered_pod_becomes_restricted_docker_options(helm_bin: str, tmp_path: Path) -> None:
    rendered = render(helm_bin, {"model": BLOB, "extraEnvFrom": [{"secretRef": {"name": "storage"}}]})
    spec = pod_spec_of(rendered.deployment())
    pod = Pod(spec, tmp_path, secrets={"storage": {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}})
    pod.make_volumes()
    for container in [*spec["initContainers"], *spec["containers"]]:
        args = pod.docker_args(container)
        assert option_values(args, "--user") == ["10001:10001"]
        assert option_values(args, "--group-add") == ["10001"]
        assert "--read-only" in args and "--cap-drop=ALL" in args
        assert option_values(args, "--security-opt") == ["no-new-privileges"]
        assert option_values(args, "--network") == ["host"]
        env = dict(e.split("=", 1) for e in option_values(args, "--env"))
        assert env["AZURE_STORAGE_CONNECTION_STRING"] == "UseDevelopmentStorage=true"
    app_args = pod.docker_args(spec["containers"][0])
    mounts = option_values(app_args, "--mount")
    assert any(m.endswith("target=/models,readonly") for m in mounts)
    assert any(m.endswith("target=/tmp") for m in mounts)
    assert option_values(app_args, "--memory") == [str(2**30)]
    assert option_values(app_args, "--cpus") == ["2"]
    # emptyDir as the kubelet makes it: world-writable, group fsGroup, setgid.
    model_dir = next(p for p in tmp_path.rglob("model") if p.is_dir())
    assert model_dir.stat().st_mode & 0o7777 == 0o2777 and model_dir.stat().st_gid == 10001


def test_command_overrides_the_entrypoint(helm_bin: str, tmp_path: Path) -> None:
    test_pod = render(helm_bin).one("Pod")
    spec = pod_spec_of(test_pod)
    pod = Pod(spec, tmp_path, images={spec["containers"][0]["image"]: "local/ai-app:dev"})
    pod.make_volumes()
    container = spec["containers"][0]
    assert option_values(pod.docker_args(container), "--entrypoint") == ["python"]
    command = pod.command_line(container)
    assert command[0] == "local/ai-app:dev"
    assert command[1] == "-c" and command[-3:] == container["args"]


def test_missing_secret_is_named(helm_bin: str, tmp_path: Path) -> None:
    spec = pod_spec_of(render(helm_bin, {"extraEnvFrom": [{"secretRef": {"name": "absent"}}]}).deployment())
    pod = Pod(spec, tmp_path)
    pod.make_volumes()
    with pytest.raises(PodError, match="Secret 'absent'"):
        pod.docker_args(spec["containers"][0])


def test_env_var_references_expand() -> None:
    spec = {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "x"},
                                                            {"name": "B", "value": "$(A)/y"}]}]}
    pod = Pod(spec, Path("/nonexistent"))
    env = dict(e.split("=", 1) for e in option_values(pod.docker_args(spec["containers"][0]), "--env"))
    assert env == {"A": "x", "B": "x/y"}


def test_root_with_run_as_non_root_is_refused() -> None:
    spec = {"securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "c", "image": "i", "securityContext": {"runAsUser": 0}}]}
    with pytest.raises(PodError, match="runAsNonRoot"):
        Pod(spec, Path("/nonexistent")).start()


def test_only_pods_and_workloads_have_pod_specs() -> None:
    with pytest.raises(PodError, match="Service"):
        pod_spec_of({"kind": "Service", "metadata": {"name": "s"}, "spec": {}})
