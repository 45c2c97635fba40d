"""Every rendered pod template meets the Pod Security Standard "restricted", field by field.

Covers the Deployment (init and app containers), the `helm test` Pod and the smoke-check Job, in every environment and
values case. The rules are those of the restricted profile (kubernetes.io/docs/concepts/security/
pod-security-standards) plus the chart's own: read-only root filesystem with /tmp on an emptyDir,
no Kubernetes API token.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import RENDER_CASES
from tests.chart.helmchart import Rendered

RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}


def pod_specs(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    specs = [(f"Deployment/{d['metadata']['name']}", d["spec"]["template"]["spec"])
             for d in rendered.of_kind("Deployment")]
    specs += [(f"Pod/{p['metadata']['name']}", p["spec"]) for p in rendered.of_kind("Pod")]
    specs += [(f"Job/{j['metadata']['name']}", j["spec"]["template"]["spec"]) for j in rendered.of_kind("Job")]
    return specs


def effective(pod: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    container_value = (container.get("securityContext") or {}).get(field)
    return container_value if container_value is not None else (pod.get("securityContext") or {}).get(field)


def check_restricted(where: str, pod: dict[str, Any]) -> None:
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), where
    assert pod["automountServiceAccountToken"] is False, f"{where}: the Kubernetes API token is mounted"
    for volume in pod.get("volumes") or []:
        types = set(volume) - {"name"}
        assert types <= RESTRICTED_VOLUME_TYPES, f"{where}: volume {volume['name']} is {types}"
    tmp_volumes = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
    containers = [*(pod.get("initContainers") or []), *pod["containers"]]
    assert containers
    for container in containers:
        at = f"{where} container {container['name']}"
        context = container.get("securityContext") or {}
        assert effective(pod, container, "runAsNonRoot") is True, f"{at}: runAsNonRoot"
        run_as_user = effective(pod, container, "runAsUser")
        assert isinstance(run_as_user, int) and run_as_user > 0, f"{at}: runAsUser {run_as_user!r}"
        seccomp = effective(pod, container, "seccompProfile") or {}
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), f"{at}: seccompProfile {seccomp}"
        assert context.get("allowPrivilegeEscalation") is False, f"{at}: allowPrivilegeEscalation"
        assert context.get("privileged") in (None, False), f"{at}: privileged"
        capabilities = context.get("capabilities") or {}
        assert capabilities.get("drop") == ["ALL"], f"{at}: capabilities.drop {capabilities.get('drop')}"
        assert set(capabilities.get("add") or []) <= {"NET_BIND_SERVICE"}, f"{at}: capabilities.add"
        assert context.get("readOnlyRootFilesystem") is True, f"{at}: readOnlyRootFilesystem"
        for port in container.get("ports") or []:
            assert "hostPort" not in port, f"{at}: hostPort"
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
        assert mounts.get("/tmp") in tmp_volumes, f"{at}: /tmp is not an emptyDir"


@pytest.mark.parametrize("case", RENDER_CASES)
def test_every_pod_template_is_restricted(renders: dict[str, Rendered], case: str) -> None:
    specs = pod_specs(renders[case])
    assert any(where.startswith("Deployment/") for where, _ in specs)
    for where, pod in specs:
        check_restricted(f"{case} {where}", pod)


def test_fetch_mode_checks_the_init_container_too(renders: dict[str, Rendered]) -> None:
    pod = renders["blob-workload-identity"].pod_spec()
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-model"]
    check_restricted("blob", pod)


def test_the_check_rejects_a_weakened_container(renders: dict[str, Rendered]) -> None:
    """The check is not vacuous: each weakened field fails it."""
    weakenings = [
        ("allowPrivilegeEscalation", True),
        ("readOnlyRootFilesystem", False),
        ("capabilities", {"drop": ["NET_RAW"]}),
        ("runAsUser", 0),
        ("privileged", True),
    ]
    for field, value in weakenings:
        pod = renders["defaults"].pod_spec()
        weak = {**pod, "containers": [dict(pod["containers"][0])]}
        weak["containers"][0]["securityContext"] = {**pod["containers"][0]["securityContext"], field: value}
        with pytest.raises(AssertionError):
            check_restricted(f"weakened {field}", weak)
