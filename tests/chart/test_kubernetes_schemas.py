"""Every rendered object validates against the Kubernetes OpenAPI schemas, strict mode.

The schemas are the ones kubernetes-validate ships; the three newest minor versions are used.
The ServiceMonitor is a Prometheus Operator CRD that kubernetes-validate does not carry: it is
checked here against the fields the operator requires instead.
"""

from __future__ import annotations

import pytest
from kubernetes_validate import utils as kubernetes_validate

from tests.chart.conftest import RENDER_CASES
from tests.chart.helmchart import Rendered

CRD_KINDS = {"ServiceMonitor"}


def newest_minor_versions(count: int = 3) -> list[str]:
    """Newest patch of each of the `count` newest minor versions kubernetes-validate ships."""
    newest: dict[tuple[int, int], str] = {}
    for version in kubernetes_validate.all_versions():  # sorted oldest first
        newest[minor_of(version)] = version
    return [newest[key] for key in sorted(newest)[-count:]]


def minor_of(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


KUBERNETES_VERSIONS = newest_minor_versions()


def test_three_distinct_recent_versions_are_used() -> None:
    minors = {minor_of(v) for v in KUBERNETES_VERSIONS}
    assert len(minors) == 3
    assert max(minors) == minor_of(kubernetes_validate.latest_version())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case", RENDER_CASES)
def test_objects_validate_strict(renders: dict[str, Rendered], case: str, version: str) -> None:
    validated = 0
    for obj in renders[case].objects:
        if obj["kind"] in CRD_KINDS:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{case}: {name} invalid for Kubernetes {version} at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{case}: {name}: {exc.message}")
        validated += 1
    assert validated >= 4  # at least ServiceAccount, Service, Deployment, test Pod


def test_a_bad_object_is_caught() -> None:
    """The strict check is not vacuous: an unknown field in a container fails it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "readinesProbe": {}}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("case", [c for c in RENDER_CASES if c in ("servicemonitor", "env-staging", "env-prod")])
def test_servicemonitor_has_the_operators_required_fields(renders: dict[str, Rendered], case: str) -> None:
    rendered = renders[case]
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    # The selector must pick the chart's Service, and the endpoint must name one of its ports.
    service = rendered.one("Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"][-1] in "smh" and endpoint["scrapeTimeout"][-1] in "smh"
