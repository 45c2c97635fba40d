"""Validation of Argo CD and Flux resources against the CRDs kept in ../shared/schemas (beside the repo).

The CRD's openAPIV3Schema is a JSON Schema for the resource. Kubernetes prunes (or, with strict
field validation, rejects) fields the schema does not declare; plain JSON Schema would ignore
them, so objects that list `properties` get additionalProperties: false unless they are marked
x-kubernetes-preserve-unknown-fields. The x-kubernetes-* keywords are otherwise ignored.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
# CI clones the repository with shared/ beside it.
SCHEMAS_DIR = REPO_ROOT.parent / "shared" / "schemas"
ARGOCD_CRDS = {
    "Application": "argocd/application-crd.yaml",
    "ApplicationSet": "argocd/applicationset-crd.yaml",
    "AppProject": "argocd/appproject-crd.yaml",
}
FLUX_CRDS = {
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): "flux/source.toolkit.fluxcd.io_gitrepositories.yaml",
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"): "flux/source.toolkit.fluxcd.io_ocirepositories.yaml",
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): "flux/source.toolkit.fluxcd.io_helmrepositories.yaml",
    ("source.toolkit.fluxcd.io/v1", "HelmChart"): "flux/source.toolkit.fluxcd.io_helmcharts.yaml",
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): "flux/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): "flux/helm.toolkit.fluxcd.io_helmreleases.yaml",
}


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        strict["additionalProperties"] = False
    return strict


@cache
def crd_validator(kind: str, api_version: str = "argoproj.io/v1alpha1") -> Draft7Validator:
    relative = ARGOCD_CRDS[kind] if api_version == "argoproj.io/v1alpha1" else FLUX_CRDS[(api_version, kind)]
    path = SCHEMAS_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shared schemas must be checked out beside the repository")
    crd = YAML(typ="safe").load(path.read_text())
    served = api_version.rpartition("/")[2]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == served]
    return Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


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
    for error in sorted(crd_validator(kind).iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(document)"
        errors.append(f"{where}: {error.message}")
    return errors


def flux_errors(document: dict[str, Any]) -> list[str]:
    """Every way the Flux resource breaks its CRD (strict: unknown fields are errors); empty when valid."""
    key = (document.get("apiVersion"), document.get("kind"))
    if key not in FLUX_CRDS:
        return [f"{key[0]}/{key[1]}: not a Flux resource with a known CRD"]
    errors = _metadata_errors(document.get("metadata"))
    validator = crd_validator(str(key[1]), str(key[0]))
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(document)"
        errors.append(f"{where}: {error.message}")
    return errors
