"""environments/flux: the Flux CRDs' schemas, references that resolve, each environment's own chart pin and values.

Each object is validated against its CRD schema (from @kubernetes-models/flux-cd, see
tests/environments/schemas.py; unknown fields are errors); then the checks the controllers would fail
on at run time: intervals, source references, and - through a real `kubectl kustomize` build - that
each HelmRelease reads exactly environments/<env>/values.yaml and renders the chart
environments/<env>/chart.yaml pins, at its digest.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.pins import read_release_with
from bot.policy import Policy, load_policy
from devenv.helm import kubectl_binary
from tests.environments.schemas import FLUX_CRDS, REPO_ROOT, flux_errors

FLUX_DIR = REPO_ROOT / "environments" / "flux"
KUSTOMIZE_FILES = {"kustomization.yaml", "kustomizeconfig.yaml"}
KNOWN_KINDS = {
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("v1", "Namespace"),
}
# Go time.ParseDuration, as Flux parses intervals and timeouts.
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d]


def chart_pin_files() -> list[Path]:
    return sorted((REPO_ROOT / "environments").glob("*/chart.yaml"))


def flux_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every object Flux applies: environments/flux and the environments' chart pins."""
    files = [p for p in sorted(FLUX_DIR.rglob("*.yaml")) if p.name not in KUSTOMIZE_FILES] + chart_pin_files()
    return [(p, d) for p in files for d in load_documents(p)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in flux_objects() if d["kind"] == kind]


def key(document: dict[str, Any]) -> tuple[str, str, str]:
    return document["kind"], document["metadata"].get("namespace", ""), document["metadata"]["name"]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(REPO_ROOT)


@pytest.fixture(scope="module")
def kubectl() -> str:
    return kubectl_binary()


def kustomize(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    # Flux's kustomize-controller allows files outside the kustomization directory (within the
    # repository); kubectl needs to be told.
    result = subprocess.run([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in YAML(typ="safe").load_all(result.stdout) if d]


@pytest.mark.parametrize("path_and_doc", flux_objects(),
                         ids=lambda pd: f"{pd[0].relative_to(REPO_ROOT)}:{pd[1]['metadata']['name']}")
def test_objects_are_known_kinds_with_intervals(path_and_doc: tuple[Path, dict[str, Any]]) -> None:
    path, document = path_and_doc
    assert (document.get("apiVersion"), document.get("kind")) in KNOWN_KINDS, path
    assert document["metadata"].get("name"), path
    if document["kind"] == "Namespace":
        return
    assert document["metadata"].get("namespace") == "flux-system", "Flux objects live with their sources"
    spec = document["spec"]
    assert GO_DURATION.match(str(spec.get("interval", ""))), f"{path}: spec.interval {spec.get('interval')!r}"
    for field in ("timeout", "retryInterval"):
        if field in spec:
            assert GO_DURATION.match(str(spec[field])), f"{path}: spec.{field} {spec[field]!r}"


@pytest.mark.parametrize("path_and_doc", [(p, d) for p, d in flux_objects() if d["kind"] != "Namespace"],
                         ids=lambda pd: f"{pd[0].relative_to(REPO_ROOT)}:{pd[1]['metadata']['name']}")
def test_object_matches_its_crd(path_and_doc: tuple[Path, dict[str, Any]]) -> None:
    path, document = path_and_doc
    assert flux_errors(document) == [], path


def test_crd_validation_catches_a_misspelt_field_a_missing_one_and_a_wrong_type() -> None:
    (pin,) = [d for p, d in flux_objects() if p == chart_pin_files()[0]]
    pin["spec"]["ref"]["digests"] = pin["spec"]["ref"].pop("digest")
    assert flux_errors(pin) == ["spec.ref: Additional properties are not allowed ('digests' was unexpected)"]
    (release, *_) = of_kind("HelmRelease")
    release["spec"]["releasename"] = release["spec"].pop("releaseName")
    assert flux_errors(release) == ["spec: Additional properties are not allowed ('releasename' was unexpected)"]
    (release, *_) = of_kind("HelmRelease")
    del release["spec"]["interval"]
    assert flux_errors(release) == ["spec: must have required property interval"]
    (release, *_) = of_kind("HelmRelease")
    release["spec"]["chartRef"]["name"] = 42
    assert flux_errors(release) == ["spec.chartRef.name: must be string"]


def test_every_flux_kind_used_has_a_schema() -> None:
    used = {(d["apiVersion"], d["kind"]) for _, d in flux_objects() if d["kind"] != "Namespace"}
    assert used <= set(FLUX_CRDS)


def test_source_references_resolve() -> None:
    defined = {key(d) for _, d in flux_objects()}
    for release in of_kind("HelmRelease"):
        assert "chart" not in release["spec"], "the chart comes from the environment's pin (chartRef)"
        ref = release["spec"]["chartRef"]
        assert (ref["kind"], ref.get("namespace", release["metadata"]["namespace"]), ref["name"]) in defined
    for kustomization in of_kind("Kustomization"):
        ref = kustomization["spec"]["sourceRef"]
        assert (ref["kind"], ref.get("namespace", kustomization["metadata"]["namespace"]), ref["name"]) in defined


def test_each_release_renders_its_environments_pinned_chart(kubectl: str, policy: Policy) -> None:
    built = kustomize(kubectl, FLUX_DIR / "releases")
    sources = {d["metadata"]["name"]: d for d in built if d["kind"] == "OCIRepository"}
    releases = {d["spec"]["targetNamespace"]: d for d in built if d["kind"] == "HelmRelease"}
    app = policy.app("ai-app")
    for env in policy.environments:
        pin = read_release_with(lambda p: (REPO_ROOT / p).read_text() if (REPO_ROOT / p).is_file() else None,
                                policy, app, env.name)
        assert pin is not None
        source = sources[releases[env.namespace]["spec"]["chartRef"]["name"]]
        # ref.digest takes precedence over semver and tag: Flux pulls exactly the pinned artifact.
        assert source["spec"]["url"] == pin.chart.repository
        assert source["spec"]["ref"] == {"tag": pin.chart.version, "digest": pin.chart.digest}
        # chartRef to an OCIRepository needs the chart layer copied as is (Flux HelmRelease docs).
        assert source["spec"]["layerSelector"] == {
            "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "operation": "copy"}
    no_branch = [d for d in built + of_kind("GitRepository") if d["kind"] == "GitRepository"
                 and d["metadata"]["name"] != "environments"]
    assert no_branch == [], "no chart source follows a branch"


def test_kustomization_paths_exist() -> None:
    for kustomization in of_kind("Kustomization"):
        path = REPO_ROOT / kustomization["spec"]["path"]
        assert (path / "kustomization.yaml").is_file(), path
        assert kustomization["spec"]["prune"] is True


def test_repository_urls_match_argo_cd() -> None:
    argocd = YAML(typ="safe").load((REPO_ROOT / "environments/argocd/applicationset.yaml").read_text())
    chart_source, values_source = argocd["spec"]["template"]["spec"]["sources"]
    urls = {d["metadata"]["name"]: d["spec"]["url"] for d in of_kind("GitRepository")}
    releases_source = of_kind("Kustomization")[0]["spec"]["sourceRef"]["name"]
    assert urls[releases_source] == values_source["repoURL"] == argocd["spec"]["generators"][0]["git"]["repoURL"]
    # Both read the chart location from the same file: Argo CD's generator globs the chart pins.
    assert argocd["spec"]["generators"][0]["git"]["files"] == [{"path": "environments/*/chart.yaml"}]
    assert chart_source["repoURL"] == "{{ .spec.url }}"


def test_one_release_per_environment(policy: Policy) -> None:
    releases = {r["spec"]["targetNamespace"]: r for r in of_kind("HelmRelease")}
    assert sorted(releases) == sorted(e.namespace for e in policy.environments)
    for env in policy.environments:
        spec = releases[env.namespace]["spec"]
        assert spec["releaseName"] == "ai-app"
        assert spec["storageNamespace"] == env.namespace
        assert spec["install"]["remediation"]["retries"] > 0
        assert spec["upgrade"]["remediation"]["retries"] > 0
        assert spec["valuesFrom"] == [{"kind": "ConfigMap", "name": f"ai-app-{env.name}-values",
                                       "valuesKey": "values.yaml"}]
    namespaces = {n["metadata"]["name"] for n in of_kind("Namespace")}
    assert namespaces == {e.namespace for e in policy.environments}


def test_releases_read_exactly_the_environment_values_files(kubectl: str, policy: Policy) -> None:
    built = kustomize(kubectl, FLUX_DIR / "releases")
    config_maps = {d["metadata"]["name"]: d for d in built if d["kind"] == "ConfigMap"}
    releases = [d for d in built if d["kind"] == "HelmRelease"]
    assert len(releases) == len(policy.environments)
    app = policy.app("ai-app")
    for release in releases:
        env = next(e for e in policy.environments if e.namespace == release["spec"]["targetNamespace"])
        (values_from,) = release["spec"]["valuesFrom"]
        # kustomize wrote the hashed name of the generated ConfigMap into the HelmRelease.
        config_map = config_maps[values_from["name"]]
        assert config_map["metadata"]["namespace"] == release["metadata"]["namespace"]
        assert config_map["data"][values_from["valuesKey"]] == policy.values_file(app, env.name).read_text()


def test_cluster_entry_point_builds_sources_and_releases(kubectl: str) -> None:
    built = kustomize(kubectl, FLUX_DIR / "cluster")
    assert sorted(key(d) for d in built) == sorted(
        key(d) for p, d in flux_objects() if p.parent == FLUX_DIR / "cluster")
    assert {d["kind"] for d in built} == {"GitRepository", "Kustomization"}
    assert [d["metadata"]["name"] for d in built if d["kind"] == "GitRepository"] == ["environments"]
