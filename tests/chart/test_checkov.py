"""checkov's Kubernetes checks pass on the rendered chart: 0 failures, and every skip is an annotation in
the chart with a reason (none on the command line)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devenv.checkov import checkov_binary
from tests.chart.helmchart import CHART_DIR, ENVIRONMENTS, ENVIRONMENTS_DIR, helm

EVERY_OPTION = ["--set", "ingress.enabled=true", "--set", "autoscaling.enabled=true",
                "--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
                "--set", "pdb.create=true"]


@pytest.fixture(scope="module")
def checkov_report(helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    rendered = tmp_path_factory.mktemp("checkov")
    for env in ENVIRONMENTS:
        values = ["--values", str(ENVIRONMENTS_DIR / env / "values.yaml")]
        for case, extra in ((env, []), (f"{env}-every-option", EVERY_OPTION)):
            result = helm(helm_bin, "template", "ai-app", str(CHART_DIR), "--namespace", f"ai-app-{env}",
                          *values, *extra)
            assert result.returncode == 0, result.stderr
            (rendered / f"{case}.yaml").write_text(result.stdout)
    # Exactly these arguments: no --skip-check, no baseline, no soft-fail.
    proc = subprocess.run([checkov_binary(), "--directory", str(rendered), "--framework", "kubernetes",
                           "--output", "json"],
                          capture_output=True, text=True, timeout=900, check=False)
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def test_rendered_chart_has_no_failed_checks(checkov_report: dict) -> None:
    failed = [f"{c['check_id']} {c['resource']} ({Path(c['file_path']).name})"
              for c in checkov_report["results"]["failed_checks"]]
    assert failed == []
    assert checkov_report["summary"]["passed"] > 100


def test_every_skip_is_a_chart_annotation_with_a_reason(checkov_report: dict) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    templates = "\n".join(p.read_text() for p in (CHART_DIR / "templates").rglob("*.yaml"))
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"
        assert f"{check['check_id']}={reason}" in templates, f"{check['check_id']}: the skip is not in the chart"
    # The one-shot check pod's probe checks, in every rendered case.
    assert {c["check_id"] for c in skipped} <= {"CKV_K8S_8", "CKV_K8S_9"}


def test_every_pod_is_covered_by_a_network_policy(helm_bin: str) -> None:
    result = helm(helm_bin, "template", "ai-app", str(CHART_DIR), "--values",
                  str(ENVIRONMENTS_DIR / "prod" / "values.yaml"))
    assert result.returncode == 0, result.stderr
    from ruamel.yaml import YAML

    objects = [o for o in YAML(typ="safe").load_all(result.stdout) if o]
    policies = [o["spec"]["podSelector"]["matchLabels"] for o in objects if o["kind"] == "NetworkPolicy"]
    pods = {f"{o['kind']}/{o['metadata']['name']}": (o["metadata"]["labels"] if o["kind"] == "Pod"
                                                     else o["spec"]["template"]["metadata"]["labels"])
            for o in objects if o["kind"] in ("Pod", "Deployment", "Job")}
    assert set(pods) == {"Deployment/ai-app", "Pod/ai-app-test-inference", "Job/ai-app-smoke-check"}
    for name, labels in pods.items():
        assert any(selector.items() <= labels.items() for selector in policies), f"{name} has no NetworkPolicy"
