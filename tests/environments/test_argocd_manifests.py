"""environments/argocd: CRD validity, the ApplicationSet's output, the project's fences and windows."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.pins import read_release_with
from bot.policy import Policy, load_policy, parse_duration
from bot.values import ChartPin, edit_chart_pin_text
from tests.environments.applicationset_eval import (
    TemplateError,
    generate_applications,
    git_files_params,
    render_string,
)
from tests.environments.schemas import REPO_ROOT, argocd_errors

ARGOCD_DIR = REPO_ROOT / "environments" / "argocd"
# Helm values for the argo/argo-cd chart, not a Kubernetes manifest.
HELM_VALUES = ARGOCD_DIR / "argocd-values.yaml"
APP = "ai-app"


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d]


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(ARGOCD_DIR.glob("*.yaml")) if p != HELM_VALUES for d in load_documents(p)]


def one(kind: str) -> dict[str, Any]:
    (document,) = [d for _, d in manifests() if d["kind"] == kind]
    return document


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(REPO_ROOT)


@pytest.fixture(scope="module")
def applications() -> list[dict[str, Any]]:
    # The environments repository is this repository: environments/ sits at its root.
    return generate_applications(one("ApplicationSet"), REPO_ROOT)


def test_manifests_are_one_project_and_one_applicationset() -> None:
    assert sorted(d["kind"] for _, d in manifests()) == ["AppProject", "ApplicationSet"]


@pytest.mark.parametrize("path_and_doc", manifests(), ids=lambda pd: f"{pd[0].name}:{pd[1]['kind']}")
def test_manifest_matches_its_crd(path_and_doc: tuple[Path, dict[str, Any]]) -> None:
    path, document = path_and_doc
    assert argocd_errors(document) == [], path.name


def test_crd_validation_catches_a_misspelt_field() -> None:
    project = one("AppProject")
    project["spec"]["syncWindows"][0]["timezone"] = project["spec"]["syncWindows"][0].pop("timeZone")
    assert argocd_errors(project) == [
        "spec.syncWindows.0: Additional properties are not allowed ('timezone' was unexpected)"]


def test_applicationset_makes_one_application_per_environment(
        applications: list[dict[str, Any]], policy: Policy) -> None:
    app = policy.app(APP)
    expected = {app.application(env.name): env for env in policy.environments}
    assert sorted(a["metadata"]["name"] for a in applications) == sorted(expected)
    for application in applications:
        env = expected[application["metadata"]["name"]]
        spec = application["spec"]
        assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": env.namespace}
        chart, values = spec["sources"]
        values_file = policy.repo_path(app, env.name)  # path in the environments repository
        assert chart["helm"]["valueFiles"] == [f"$values/{values_file}"]
        assert (REPO_ROOT / values_file).is_file()
        assert chart["helm"]["releaseName"] == APP
        assert values["ref"] == "values"
        assert application["metadata"]["labels"]["ai-app.io/environment"] == env.name
        assert spec["syncPolicy"]["managedNamespaceMetadata"]["labels"]["ai-app.io/environment"] == env.name


def _pins(policy: Policy, root: Path) -> dict[str, ChartPin]:
    app = policy.app(APP)
    result = {}
    for env in policy.environments:
        pin = read_release_with(lambda p: (root / p).read_text() if (root / p).is_file() else None,
                                policy, app, env.name)
        assert pin is not None
        result[app.application(env.name)] = pin.chart
    return result


def test_each_application_renders_the_chart_its_environment_pins(
        applications: list[dict[str, Any]], policy: Policy) -> None:
    pins = _pins(policy, REPO_ROOT)
    for application in applications:
        chart_source = application["spec"]["sources"][0]
        pin = pins[application["metadata"]["name"]]
        assert pin.repository.startswith("oci://") and pin.digest.startswith("sha256:")
        # Argo CD's OCI source: oci:// repoURL, a digest as targetRevision, path "." for a Helm chart.
        assert chart_source["repoURL"] == pin.repository
        assert chart_source["targetRevision"] == pin.digest
        assert chart_source["path"] == "."
        assert "chart" not in chart_source


def test_a_chart_pin_change_moves_only_that_environment(tmp_path: Path, policy: Policy) -> None:
    import shutil

    shutil.copytree(REPO_ROOT / "environments", tmp_path / "environments")
    before = {a["metadata"]["name"]: a for a in generate_applications(one("ApplicationSet"), tmp_path)}
    dev_chart = tmp_path / "environments" / "dev" / "chart.yaml"
    new = ChartPin("oci://aiappacr.azurecr.io/helm/ai-app", "0.2.0-2001.gfedcba987654", "sha256:" + "e" * 64)
    dev_chart.write_text(edit_chart_pin_text(dev_chart.read_text(), new, "dev/chart.yaml"))
    after = {a["metadata"]["name"]: a for a in generate_applications(one("ApplicationSet"), tmp_path)}
    assert after["ai-app-dev"]["spec"]["sources"][0]["targetRevision"] == new.digest
    assert after["ai-app-staging"] == before["ai-app-staging"]
    assert after["ai-app-prod"] == before["ai-app-prod"]


def test_deleting_the_applicationset_keeps_the_workloads() -> None:
    spec = one("ApplicationSet")["spec"]
    assert spec["syncPolicy"]["preserveResourcesOnDeletion"] is True
    # The resources finalizer would cascade the Application's deletion to its resources anyway.
    assert "finalizers" not in spec["template"]["metadata"]


def test_go_template_params_keep_the_file_nesting_and_path_wins(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "chart.yaml").write_text("path: from-file\nspec:\n  ref:\n    digest: sha256:x\n")
    (params,) = git_files_params(tmp_path, "*/chart.yaml")
    assert params["spec"] == {"ref": {"digest": "sha256:x"}}
    assert params["path"]["basename"] == "dev"
    assert render_string("{{ .spec.ref.digest }}", params, missingkey_error=True) == "sha256:x"
    with pytest.raises(TemplateError):
        render_string("{{ .spec.ref.tag }}", params, missingkey_error=True)


def test_generated_applications_match_the_application_crd(applications: list[dict[str, Any]]) -> None:
    for application in applications:
        assert argocd_errors(application) == [], application["metadata"]["name"]


def test_generated_applications_sync_automatically_and_retry(applications: list[dict[str, Any]]) -> None:
    for application in applications:
        sync = application["spec"]["syncPolicy"]
        assert sync["automated"] == {"prune": True, "selfHeal": True}
        assert "CreateNamespace=true" in sync["syncOptions"]
        assert sync["retry"]["limit"] > 0 and sync["retry"]["backoff"]["factor"] > 1


def test_generated_applications_stay_inside_the_project(applications: list[dict[str, Any]]) -> None:
    project = one("AppProject")
    allowed = {(d["server"], d["namespace"]) for d in project["spec"]["destinations"]}
    for application in applications:
        spec = application["spec"]
        assert spec["project"] == project["metadata"]["name"]
        destination = spec["destination"]
        assert (destination["server"], destination["namespace"]) in allowed
        for source in spec["sources"]:
            assert source["repoURL"] in project["spec"]["sourceRepos"]


def test_project_destinations_are_exactly_the_environments(policy: Policy) -> None:
    project = one("AppProject")
    assert sorted(d["namespace"] for d in project["spec"]["destinations"]) == sorted(
        e.namespace for e in policy.environments)


def test_environment_folders_and_promotion_yaml_agree(policy: Policy) -> None:
    # The generator follows folders, envbot follows promotion.yaml: a folder without an entry (or
    # the reverse) would deploy an environment envbot cannot promote into.
    folders = sorted(p.parent.name for p in (REPO_ROOT / "environments").glob("*/values.yaml"))
    assert folders == sorted(e.name for e in policy.environments)
    pinned = sorted(p.parent.name for p in (REPO_ROOT / "environments").glob("*/chart.yaml"))
    assert pinned == folders, "every environment pins its chart beside its values"
    for env in policy.environments:
        assert env.namespace == f"{APP}-{env.name}"


def test_template_keys_fail_loudly_with_missingkey_error() -> None:
    params = {"path": {"basename": "dev"}}
    assert render_string("ai-app-{{ .path.basename }}", params, missingkey_error=True) == "ai-app-dev"
    with pytest.raises(TemplateError, match="no entry for key 'basname'"):
        render_string("ai-app-{{ .path.basname }}", params, missingkey_error=True)
    assert render_string("{{ .nope }}", params, missingkey_error=False) == "<no value>"
    appset = one("ApplicationSet")
    assert appset["spec"]["goTemplate"] is True
    assert appset["spec"]["goTemplateOptions"] == ["missingkey=error"]


def test_sync_windows_are_the_freeze_windows_of_promotion_yaml(policy: Policy) -> None:
    windows = one("AppProject")["spec"]["syncWindows"]
    assert all(w["kind"] == "deny" for w in windows), "an allow window would block syncs outside it"
    app = policy.app(APP)
    for env in policy.environments:
        name = app.application(env.name)
        matching = [w for w in windows if any(fnmatch.fnmatchcase(name, p) for p in w.get("applications", []))]
        assert sorted((w["schedule"], parse_duration(w["duration"]), w.get("timeZone", "UTC")) for w in matching) \
            == sorted((f.schedule, f.duration, f.timezone) for f in env.freeze), env.name
        assert not any(w.get("namespaces") or w.get("clusters") for w in matching)


def test_cluster_scoped_whitelist_is_only_namespaces() -> None:
    assert one("AppProject")["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    assert one("AppProject")["spec"]["orphanedResources"] == {"warn": True}


def _rendered_kinds(helm_bin: str, values_file: Path, extra: list[str]) -> set[tuple[str, str]]:
    result = subprocess.run(
        [helm_bin, "template", "ai-app", str(REPO_ROOT / "charts" / APP), "--namespace", "ai-app-test",
         "-f", str(values_file), *extra],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    kinds = set()
    for document in YAML(typ="safe").load_all(result.stdout):
        if not document:
            continue
        # Argo CD does not run helm test hooks.
        hooks = (document.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook", "")
        if "test" in hooks.split(","):
            continue
        group = document["apiVersion"].rpartition("/")[0]
        kinds.add((group, document["kind"]))
    return kinds


def test_namespaced_whitelist_is_what_the_chart_renders(helm_bin: str, policy: Policy) -> None:
    every_option = ["--set", "ingress.enabled=true", "--set", "autoscaling.enabled=true",
                    "--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
                    "--set", "pdb.create=true"]
    rendered: set[tuple[str, str]] = set()
    for env in policy.environments:
        values_file = policy.values_file(policy.app(APP), env.name)
        rendered |= _rendered_kinds(helm_bin, values_file, [])
        rendered |= _rendered_kinds(helm_bin, values_file, every_option)
    whitelist = {(r["group"], r["kind"]) for r in one("AppProject")["spec"]["namespaceResourceWhitelist"]}
    assert rendered - whitelist == set(), "the chart renders kinds the project would refuse to sync"
    assert whitelist - rendered == set(), "whitelisted kinds the chart never renders"


def test_notification_subscriptions_are_configured() -> None:
    notifications = YAML(typ="safe").load(HELM_VALUES.read_text())["notifications"]
    annotations = one("ApplicationSet")["spec"]["template"]["metadata"]["annotations"]
    subscriptions = [k.removeprefix("notifications.argoproj.io/subscribe.").split(".", 1)
                     for k in annotations if k.startswith("notifications.argoproj.io/subscribe.")]
    assert {trigger for trigger, _ in subscriptions} >= {"on-sync-failed", "on-health-degraded"}
    for trigger, service in subscriptions:
        assert f"service.{service}" in notifications["notifiers"]
        definitions = YAML(typ="safe").load(notifications["triggers"][f"trigger.{trigger}"])
        for definition in definitions:
            for template in definition["send"]:
                assert f"template.{template}" in notifications["templates"]
    recipients = YAML(typ="safe").load(notifications["notifiers"]["service.teams-workflows"])["recipientUrls"]
    assert set(annotations.values()) <= set(recipients)


def test_on_deployed_fires_once_per_multi_source_revision_set() -> None:
    from tests.environments.schemas import argocd_errors

    notifications = YAML(typ="safe").load(HELM_VALUES.read_text())["notifications"]
    (definition,) = YAML(typ="safe").load(notifications["triggers"]["trigger.on-deployed"])
    sources = one("ApplicationSet")["spec"]["template"]["spec"]
    assert "sources" in sources and "source" not in sources   # multi-source Applications
    # For multi-source Applications Argo CD fills syncResult.revisions (one per source), not .revision:
    # the Application schema takes a list there, and refuses a single string.
    application = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "ai-app-prod", "namespace": "argocd"},
        "spec": {"project": "ai-app", "destination": {"server": "https://kubernetes.default.svc", "namespace": "p"},
                 "sources": [{"repoURL": "oci://example.azurecr.io/helm/ai-app", "targetRevision": "1.0.0",
                              "path": "."}]},
        "status": {"operationState": {"operation": {"sync": {}}, "phase": "Succeeded",
                                      "startedAt": "2026-01-01T00:00:00Z",
                                      "syncResult": {"revision": "", "revisions": ["sha256:ab", "0123abc"]}}},
    }
    assert not [e for e in argocd_errors(application) if "syncResult" in e]
    application["status"]["operationState"]["syncResult"]["revisions"] = "0123abc"
    assert [e for e in argocd_errors(application) if e.startswith("status.operationState.syncResult.revisions")]
    assert definition["oncePer"].replace("?", "") == "app.status.operationState.syncResult.revisions"
