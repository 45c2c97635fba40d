"""Render charts/ai-app with the real helm binary and read the objects back."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "ai-app"
ENVIRONMENTS_DIR = REPO_ROOT / "environments"
ENVIRONMENTS = ("dev", "staging", "prod")
# 64-hex digests for renders that need them (the shape matters here, not the bytes).
IMAGE_DIGEST = "sha256:" + "ab" * 32
MODEL_SHA256 = "cd" * 32
CLIENT_ID = "5f0c3c5e-2a7d-4e0b-9d8e-1f2a3b4c5d6e"


class RenderError(RuntimeError):
    """helm refused the values; the message is helm's."""


@dataclass
class Rendered:
    """The objects of one `helm template` run."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}

    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    def pod_spec(self) -> dict[str, Any]:
        return self.deployment()["spec"]["template"]["spec"]

    def app_container(self) -> dict[str, Any]:
        return next(c for c in self.pod_spec()["containers"] if c["name"] == "inference")

    def env(self) -> dict[str, str]:
        return {e["name"]: e.get("value") for e in self.app_container().get("env", [])}


def helm(helm_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_bin, *args], capture_output=True, text=True, timeout=120)


def render(
    helm_bin: str,
    values: Mapping[str, Any] | None = None,
    *,
    value_files: Iterable[Path] = (),
    release: str = "ai-app",
    namespace: str = "ai-app-test",
) -> Rendered:
    """`helm template` with optional values files and a values mapping (applied last)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["template", release, str(CHART_DIR), "--namespace", namespace]
        for path in value_files:
            args += ["--values", str(path)]
        if values:
            override = Path(tmp) / "values.json"  # JSON is YAML: helm reads it as a values file
            override.write_text(json.dumps(values))
            args += ["--values", str(override)]
        result = helm(helm_bin, *args)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    yaml = YAML(typ="safe", pure=True)
    return Rendered([doc for doc in yaml.load_all(result.stdout) if doc])


def environment_values(env: str) -> Path:
    return ENVIRONMENTS_DIR / env / "values.yaml"


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge like helm's values files (maps merge, everything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Value sets covering each optional feature: (id, values).
MATRIX: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("image-mode-pinned", {
        "image": {"digest": IMAGE_DIGEST, "requireDigest": True},
        "model": {"source": "image", "sha256": MODEL_SHA256},
    }),
    ("blob-workload-identity", {
        "image": {"digest": IMAGE_DIGEST},
        "model": {"source": "blob", "sha256": MODEL_SHA256,
                  "uri": "https://aiappmodels.blob.core.windows.net/models/iris-logreg/1/model.onnx"},
        "workloadIdentity": {"enabled": True, "clientId": CLIENT_ID, "tenantId": CLIENT_ID},
        "serviceAccount": {"name": "ai-app"},
    }),
    ("s3-secret-env", {
        "model": {"source": "s3", "sha256": MODEL_SHA256, "uri": "s3://models/iris-logreg/1/model.onnx"},
        "extraEnvFrom": [{"secretRef": {"name": "s3-credentials"}}],
        "extraEnv": [{"name": "AWS_REGION", "value": "westeurope"}],
    }),
    ("ingress-tls", {
        "ingress": {"enabled": True, "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                    "hosts": [{"host": "ai.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                    "tls": [{"secretName": "ai-tls", "hosts": ["ai.example.com"]}]},
    }),
    ("hpa", {
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9,
                        "targetMemoryUtilizationPercentage": 80},
        "pdb": {"minAvailable": 2},
    }),
    ("no-network-policy-no-pdb", {"networkPolicy": {"enabled": False}, "pdb": {"create": False}}),
    ("servicemonitor", {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}}),
    ("loadbalancer", {
        "service": {"type": "LoadBalancer", "azureDnsLabel": "ai-app-demo", "internalLoadBalancer": True,
                    "loadBalancerSourceRanges": ["203.0.113.0/24"], "externalTrafficPolicy": "Local"},
    }),
    ("no-spread-no-tests", {"topologySpread": {"enabled": False}, "tests": {"enabled": False},
                            "preStopSleepSeconds": 0}),
    ("common-labels", {"commonLabels": {"team": "ml"}, "commonAnnotations": {"owner": "ml-platform"},
                       "podLabels": {"tier": "gold"}, "podAnnotations": {"note": "x"},
                       "nodeSelector": {"workload": "inference"},
                       "tolerations": [{"key": "workload", "operator": "Equal", "value": "inference",
                                        "effect": "NoSchedule"}],
                       "imagePullSecrets": [{"name": "acr"}], "priorityClassName": "high"}),
]
