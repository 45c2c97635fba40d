"""Validation of Argo CD and Flux resources against their custom resource schemas.

The schemas come from the npm packages @kubernetes-models/argo-cd and @kubernetes-models/flux-cd
(pinned in devenv/package.json, installed by scripts/bootstrap; docs/schemas.md says which upstream
release each corresponds to). They ship validators generated from the projects' Go API types, run
by devenv/crd_validate.mjs under node. Kubernetes prunes (or, with strict field validation,
rejects) fields the schema does not declare; that script reports them as unexpected.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVENV = REPO_ROOT / "devenv"
VALIDATE_SCRIPT = DEVENV / "crd_validate.mjs"
ARGOCD_PACKAGE = "@kubernetes-models/argo-cd"
FLUX_PACKAGE = "@kubernetes-models/flux-cd"
# kind -> the model module, "<package>/<group>/<version>/<Kind>", that validates it.
ARGOCD_CRDS = {
    "Application": f"{ARGOCD_PACKAGE}/argoproj.io/v1alpha1/Application",
    "ApplicationSet": f"{ARGOCD_PACKAGE}/argoproj.io/v1alpha1/ApplicationSet",
    "AppProject": f"{ARGOCD_PACKAGE}/argoproj.io/v1alpha1/AppProject",
}
# (apiVersion, kind) -> model module, for the Flux kinds environments/flux uses.
FLUX_CRDS = {
    (f"{group}/{version}", kind): f"{FLUX_PACKAGE}/{group}/{version}/{kind}"
    for group, version, kind in [
        ("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        ("source.toolkit.fluxcd.io", "v1", "HelmRepository"),
        ("source.toolkit.fluxcd.io", "v1", "OCIRepository"),
        ("source.toolkit.fluxcd.io", "v1", "HelmChart"),
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        ("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
    ]
}


def installed_version(package: str) -> str:
    """The version of an npm package installed in devenv/node_modules (pinned by package-lock.json)."""
    manifest = DEVENV / "node_modules" / package / "package.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: run scripts/bootstrap (npm ci --prefix devenv) to install {package}")
    return json.loads(manifest.read_text(encoding="utf-8"))["version"]


@cache
def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node is not installed: run scripts/bootstrap (it installs npm and node)")
    return node


def validate_documents(items: list[tuple[str, dict[str, Any]]]) -> list[list[str]]:
    """For each (model module, document): its schema errors as 'path: message' strings."""
    for package in {"/".join(module.split("/")[:2]) for module, _ in items}:
        installed_version(package)
    payload = json.dumps([{"module": module, "document": document} for module, document in items], default=str)
    result = subprocess.run([_node(), str(VALIDATE_SCRIPT)], input=payload, capture_output=True, text=True,
                            check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{VALIDATE_SCRIPT.name} failed: {result.stderr.strip()}")
    return [[f"{'.'.join(error['path']) or '(document)'}: {error['message']}" for error in errors]
            for errors in json.loads(result.stdout)]


def _metadata_errors(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return ["metadata: not a mapping"]
    errors = []
    if not isinstance(metadata.get("name"), str) or not metadata["name"]:
        errors.append("metadata.name: missing")
    for key in ("labels", "annotations"):
        for k, v in (metadata.get(key) or {}).items():
            if not isinstance(v, str):
                errors.append(f"metadata.{key}.{k}: {v!r} is not a string")
    return errors


def argocd_errors(document: dict[str, Any]) -> list[str]:
    """Every way the Argo CD resource breaks its CRD: 'path: message' strings, empty when valid."""
    errors = []
    if document.get("apiVersion") != "argoproj.io/v1alpha1":
        errors.append(f"apiVersion: {document.get('apiVersion')!r}, expected argoproj.io/v1alpha1")
    kind = document.get("kind")
    if kind not in ARGOCD_CRDS:
        return [*errors, f"kind: {kind!r} is not an Argo CD resource"]
    errors += _metadata_errors(document.get("metadata"))
    return errors + validate_documents([(ARGOCD_CRDS[kind], document)])[0]


def flux_errors(document: dict[str, Any]) -> list[str]:
    """Every way the Flux resource breaks its CRD: 'path: message' strings, empty when valid."""
    module = FLUX_CRDS.get((document.get("apiVersion"), document.get("kind")))
    if module is None:
        return [f"apiVersion/kind: {document.get('apiVersion')}/{document.get('kind')} is not a Flux resource"
                f" this project uses ({sorted(FLUX_CRDS)})"]
    return _metadata_errors(document.get("metadata")) + validate_documents([(module, document)])[0]
