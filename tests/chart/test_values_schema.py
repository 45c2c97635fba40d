"""values.schema.json and the chart's own checks reject bad values with a message naming the field."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import jsonschema
import pytest

from tests.chart.helmchart import (
    CHART_DIR,
    ENVIRONMENTS,
    IMAGE_DIGEST,
    MODEL_SHA256,
    RenderError,
    environment_values,
    load_yaml,
    merge,
    render,
)

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS = load_yaml(CHART_DIR / "values.yaml")
BLOB_URI = "https://aiappmodels.blob.core.windows.net/models/iris-logreg/1/model.onnx"


def object_paths(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of every schema object with fixed properties (the ones that must refuse unknown keys)."""
    found = [path] if "properties" in schema else []
    for key, sub in schema.get("properties", {}).items():
        found += object_paths(sub, (*path, key))
    return found


def nested(path: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def render_error(helm_bin: str, values: dict[str, Any]) -> str:
    with pytest.raises(RenderError) as caught:
        render(helm_bin, values)
    return str(caught.value)


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("source", ["values.yaml", *ENVIRONMENTS])
def test_shipped_values_validate(source: str) -> None:
    # Environment files override the chart defaults; helm validates the merged result.
    values = DEFAULTS if source == "values.yaml" else merge(DEFAULTS, load_yaml(environment_values(source)))
    jsonschema.Draft7Validator(SCHEMA).validate(values)


def test_every_object_refuses_unknown_keys() -> None:
    for path in object_paths(SCHEMA):
        node = SCHEMA
        for key in path:
            node = node["properties"][key]
        assert node.get("additionalProperties") is False, f"{'.'.join(path) or '<root>'} accepts unknown keys"


@pytest.mark.parametrize("path", object_paths(SCHEMA), ids=lambda p: ".".join(p) or "root")
def test_unknown_key_is_rejected(helm_bin: str, path: tuple[str, ...]) -> None:
    message = render_error(helm_bin, nested(path, {"typoKey": "x"}))
    assert "typoKey" in message and "not allowed" in message
    where = "/" + "/".join(path) if path else ""
    assert f"at '{where}'" in message


def test_unknown_key_in_a_list_item_is_rejected(helm_bin: str) -> None:
    message = render_error(helm_bin, {"extraEnv": [{"name": "A", "vaule": "typo"}]})
    assert "/extraEnv/0" in message and "vaule" in message


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "AB" * 32, "sha512:" + "ab" * 32, "ab" * 32, "sha256:" + "ab" * 33],
)
def test_bad_image_digest_is_rejected(helm_bin: str, digest: str) -> None:
    message = render_error(helm_bin, {"image": {"digest": digest}})
    assert "/image/digest" in message


@pytest.mark.parametrize("sha256", ["abc", "AB" * 32, "sha256:" + "ab" * 32, "g" * 64, "ab" * 33])
def test_bad_model_digest_is_rejected(helm_bin: str, sha256: str) -> None:
    message = render_error(helm_bin, {"model": {"sha256": sha256}})
    assert "/model/sha256" in message


@pytest.mark.parametrize("source", ["gcs", "Blob", "", "azure"])
def test_bad_model_source_is_rejected(helm_bin: str, source: str) -> None:
    message = render_error(helm_bin, {"model": {"source": source}})
    assert "/model/source" in message and "'image', 'blob', 's3'" in message


def test_model_version_must_be_a_string(helm_bin: str) -> None:
    # An unquoted `version: 2` would be an int; labels and env need the string form envbot writes.
    message = render_error(helm_bin, {"model": {"version": 2}})
    assert "/model/version" in message


def test_require_digest_without_digest_fails_with_a_clear_message(helm_bin: str) -> None:
    message = render_error(helm_bin, {"image": {"requireDigest": True, "tag": "1a2b3c4"}})
    assert "image.digest is required" in message and "requireDigest" in message


def test_require_digest_with_digest_renders(helm_bin: str) -> None:
    rendered = render(helm_bin, {"image": {"requireDigest": True, "digest": IMAGE_DIGEST}})
    assert rendered.app_container()["image"].endswith("@" + IMAGE_DIGEST)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_require_a_digest(helm_bin: str, env: str) -> None:
    with pytest.raises(RenderError, match=r"image\.digest is required"):
        render(helm_bin, {"image": {"digest": ""}}, value_files=[environment_values(env)])


@pytest.mark.parametrize("source", ["blob", "s3"])
def test_fetch_modes_need_uri_and_sha256(helm_bin: str, source: str) -> None:
    uri = BLOB_URI if source == "blob" else "s3://models/iris-logreg/1/model.onnx"
    assert "model.uri is required" in render_error(helm_bin, {"model": {"source": source, "sha256": MODEL_SHA256}})
    assert "model.sha256 is required" in render_error(helm_bin, {"model": {"source": source, "uri": uri}})


def test_uri_scheme_must_match_the_source(helm_bin: str) -> None:
    message = render_error(helm_bin, {"model": {"source": "s3", "uri": BLOB_URI, "sha256": MODEL_SHA256}})
    assert "s3://" in message
    message = render_error(
        helm_bin, {"model": {"source": "blob", "uri": "s3://b/k/model.onnx", "sha256": MODEL_SHA256}}
    )
    assert "https://" in message


def test_image_mode_refuses_a_uri(helm_bin: str) -> None:
    assert "model.source is \"image\"" in render_error(helm_bin, {"model": {"uri": BLOB_URI}})


def test_workload_identity_needs_a_client_id(helm_bin: str) -> None:
    message = render_error(helm_bin, {"workloadIdentity": {"enabled": True}})
    assert "workloadIdentity.clientId is required" in message


def test_client_id_must_be_a_guid(helm_bin: str) -> None:
    message = render_error(helm_bin, {"workloadIdentity": {"enabled": True, "clientId": "not-a-guid"}})
    assert "/workloadIdentity/clientId" in message


def test_dns_label_only_with_a_load_balancer(helm_bin: str) -> None:
    message = render_error(helm_bin, {"service": {"azureDnsLabel": "ai-app-demo"}})
    assert "service.azureDnsLabel" in message and "LoadBalancer" in message


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"service": {"type": "NodePort"}}, "/service/type"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"server": {"port": 80}}, "/server/port"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"updateStrategy": {"maxSurge": 0}}, "/updateStrategy/maxSurge"),
        ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
        ({"networkPolicy": {"egressCIDRs": [{"cidr": "10.0.0.0"}]}}, "/networkPolicy/egressCIDRs/0/cidr"),
        ({"topologySpread": {"zoneWhenUnsatisfiable": "Never"}}, "/topologySpread/zoneWhenUnsatisfiable"),
        ({"ingress": {"hosts": [{"host": "Bad_Host", "paths": [{"path": "/", "pathType": "Prefix"}]}]}},
         "/ingress/hosts/0/host"),
        ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "/metrics/serviceMonitor/interval"),
    ],
)
def test_malformed_values_are_rejected(helm_bin: str, values: dict[str, Any], field: str) -> None:
    assert field in render_error(helm_bin, values)


def test_hpa_bounds_are_checked(helm_bin: str) -> None:
    message = render_error(helm_bin, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}})
    assert "autoscaling.minReplicas" in message


def test_the_chart_renders_as_a_subchart_with_global_values(helm_bin: str, tmp_path) -> None:
    # An umbrella chart passes `global` to every subchart: the schema must accept it at the root.
    import shutil

    umbrella = tmp_path / "platform"
    (umbrella / "charts").mkdir(parents=True)
    shutil.copytree(CHART_DIR, umbrella / "charts" / "ai-app")
    (umbrella / "Chart.yaml").write_text("apiVersion: v2\nname: platform\nversion: 1.0.0\n"
                                         "dependencies:\n  - name: ai-app\n    version: '>=0.0.0-0'\n")
    (umbrella / "values.yaml").write_text(json.dumps({
        "global": {"imageRegistry": "aiappacr.azurecr.io", "environment": "staging"},
        "ai-app": {"image": {"digest": IMAGE_DIGEST}, "model": {"sha256": MODEL_SHA256}},
    }))
    result = subprocess.run([helm_bin, "template", "platform", str(umbrella)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
