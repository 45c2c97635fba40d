"""The local end-to-end delivery run (the README's main command) completes with real parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devenv import REPO_ROOT
from devenv.delivery import _without_gates

pytestmark = [pytest.mark.e2e, pytest.mark.docker]


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory, docker_engine: None, base_image: str):
    workdir = tmp_path_factory.mktemp("delivery")
    timings = workdir.parent / "delivery-timings.json"
    result = subprocess.run(
        [sys.executable, "-m", "devenv.delivery", "--workdir", str(workdir), "--timings", str(timings)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
    )
    return result, workdir, timings


def _git(remote: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(remote), *args], capture_output=True, text=True,
                          check=True).stdout


def test_the_run_completes_every_stage(delivery) -> None:
    result, _, timings = delivery
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    stages = json.loads(timings.read_text())["stages"]
    assert len(stages) == 31   # 20 with the chart stages + 6 of envbot propose + 5 of the model gates
    assert "Lead time from a commit to dev pinned" in result.stdout


def test_model_gates_refused_two_candidates_and_passed_the_third(delivery) -> None:
    result, workdir, _ = delivery
    assert result.returncode == 0, result.stdout[-4000:]
    assert "model-signature: input input: removed" in result.stdout          # v3: input renamed
    assert "model-signature: input features: added" in result.stdout
    assert "model-metric: metric accuracy: " in result.stdout and "drops" in result.stdout   # v4: worse
    staging = _git(workdir / "environments.git", "show", "main:staging/values.yaml")
    assert "/iris-logreg/5/model.onnx" in staging                            # v5 landed in staging


def test_the_run_started_the_dashboard_and_stopped_it(delivery) -> None:
    import re
    import socket

    result, _, _ = delivery
    match = re.search(r"dashboard: http://127\.0\.0\.1:(\d+)/", result.stdout)
    assert match, result.stdout[-2000:]
    # Without --serve-dashboard the run does not leave it behind.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(match.group(1)))) != 0


def test_promotions_went_through_pull_request_branches_with_rendered_diffs(delivery) -> None:
    result, workdir, _ = delivery
    assert "pushed branch envbot/promote-ai-app-staging for review" in result.stdout
    assert "### Rendered manifests (helm template)" in result.stdout
    merges = _git(workdir / "environments.git", "log", "--merges", "--format=%an %s", "main").splitlines()
    assert sum("envbot/promote-ai-app-prod" in m for m in merges) == 3   # release 1, chart-only, model v2
    assert all(m.startswith("Riley Reviewer") for m in merges)


def test_prod_was_rolled_back_by_a_revert_commit_to_model_v1(delivery) -> None:
    _, workdir, _ = delivery
    remote = workdir / "environments.git"
    log = _git(remote, "log", "--format=%H%n%B%n--end--", "main", "--", "environments/prod/values.yaml")
    newest = log.split("--end--")[0]
    assert "Envbot-Action: rollback" in newest
    assert "Envbot-Reverts:" in newest
    prod_values = _git(remote, "show", "main:environments/prod/values.yaml")
    assert 'version: "1"' in prod_values
    dev_values = _git(remote, "show", "main:environments/dev/values.yaml")
    assert 'version: "2"' in dev_values


def test_the_release_prod_pins_answered_a_prediction_with_model_v1(delivery) -> None:
    result, _, _ = delivery
    line = next(ln for ln in result.stdout.splitlines() if ln.strip().startswith("prediction:"))
    prediction = json.loads(line.split("prediction:", 1)[1])
    assert prediction["model_version"] == "1"
    labels = next(o for o in prediction["outputs"] if o["name"] == "label")
    assert labels["data"] == [0, 2]  # a setosa and a virginica from the iris data


def test_the_environments_repo_has_the_separate_layout_and_chart_pins(delivery) -> None:
    _, workdir, _ = delivery
    remote = workdir / "environments.git"
    files = _git(remote, "ls-tree", "-r", "--name-only", "main").split()
    assert not any(f.startswith("charts/") for f in files), "no chart beside the environments"
    assert {f"environments/{env}/chart.yaml" for env in ("dev", "staging", "prod")} <= set(files)


def test_the_chart_only_release_reached_prod_only_through_its_promotion(delivery) -> None:
    result, workdir, _ = delivery
    assert "prod renders the same manifests while the promotion pull request is open" in result.stdout
    remote = workdir / "environments.git"
    log = _git(remote, "log", "--format=%B%n--end--", "main", "--", "environments/dev/chart.yaml")
    chart_updates = [m for m in log.split("--end--") if "Envbot-Action: update" in m and "Envbot-Chart:" in m]
    assert len(chart_updates) >= 2   # the first chart, then the chart-only release
    prod_chart = _git(remote, "show", "main:environments/prod/chart.yaml")
    dev_chart = _git(remote, "show", "main:environments/dev/chart.yaml")
    # The rollback reverted the model release in prod, not the chart release before it.
    assert "tag: \"0.1.0-3.g" in prod_chart and "tag: \"0.1.0-3.g" in dev_chart


def test_local_policy_switches_off_soak_and_freeze_only() -> None:
    template = (REPO_ROOT / "environments" / "promotion.yaml").read_text().splitlines(keepends=True)
    local = "".join(_without_gates(template))
    assert "schedule:" not in local
    assert "soak: 0s" in local
    # Everything else is kept line for line.
    kept = [ln for ln in template if not ln.lstrip().startswith(("soak:", "freeze:", "- schedule:",
                                                                   "duration:", "timezone:"))]
    assert all(ln in local for ln in kept if ln.strip() and not ln.lstrip().startswith("#"))
