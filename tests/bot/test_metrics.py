"""envbot metrics on constructed histories (fixed commit dates) with known answers for each DORA metric."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.dora import undone_changes
from bot.timeline import build_timeline
from tests.bot.conftest import build_and_push
from tests.bot.envrepo import REPO_ROOT, run_envbot
from tests.bot.histories import History, SourceHistory, pin

DAY = 86_400
WINDOW = ("--since", "2026-01-01", "--until", "2026-01-31")


def build_scenario(root: Path, pins: dict, source: str | None = None) -> tuple[History, dict[str, str]]:
    """prod: B updated and rolled back, C promoted (PR), a settings edit, D pinned by hand, D reverted by
    hand and the revert reverted; staging: E, which never reaches prod; app `other`: B in prod.
    SOURCE: promotion.yaml's source repository of both apps."""
    h = History(root, apps=("ai-app", "other"), sources={"ai-app": source, "other": source} if source else {})
    h.init({"dev": pins["A"], "staging": pins["A"], "prod": pins["A"]}, "2025-12-01T00:00:00Z")
    shas = {}
    shas["B"] = h.update("prod", pins["B"], "2026-01-03T00:00:00Z")
    shas["rollback"] = h.rollback("prod", [shas["B"]], pins["A"], "2026-01-03T20:00:00Z",
                                  merged="2026-01-04T00:00:00Z")
    shas["C"] = h.promote("staging", "prod", pins["C"], "2026-01-05T12:00:00Z", merged="2026-01-06T00:00:00Z")
    shas["settings"] = h.hand_edit_other("prod", "2026-01-07T00:00:00Z")
    shas["D"] = h.hand_edit_pin("prod", pins["D"], "2026-01-08T00:00:00Z")
    shas["revert"] = h.git_revert(shas["D"], "2026-01-10T00:00:00Z")
    shas["revert2"] = h.git_revert(shas["revert"], "2026-01-11T00:00:00Z")
    shas["E"] = h.update("staging", pins["E"], "2026-01-12T00:00:00Z")
    shas["other-B"] = h.update("prod", pins["B"], "2026-01-15T00:00:00Z", app="other")
    return h, shas


def source_history(root: Path) -> SourceHistory:
    src = SourceHistory(root / "ai-app-src")
    for name, when in (("c0", "2025-11-30T00:00:00Z"), ("c1", "2026-01-01T00:00:00Z"),
                       ("c2", "2026-01-02T00:00:00Z"), ("c3", "2026-01-05T00:00:00Z"),
                       ("c4", "2026-01-07T12:00:00Z"), ("c5", "2026-01-11T00:00:00Z")):
        src.commit(name, when)
    return src


REVISION_OF = {"A": "c0", "B": "c2", "C": "c3", "D": "c4", "E": "c5"}


def offline_pins() -> dict:
    return {name: pin(name.lower()) for name in REVISION_OF}


def envbot_json(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = run_envbot("metrics", "--json", *args, env=env or {**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return json.loads(proc.stdout)


def by_env(report: dict) -> dict[str, dict]:
    return {e["env"]: e for e in report["environments"]}


def test_frequency_failure_rate_and_restore_offline(tmp_path: Path) -> None:
    h, shas = build_scenario(tmp_path, offline_pins())
    prod = by_env(envbot_json("--repo", str(h.remote), "--app", "ai-app", "--offline", *WINDOW))["prod"]

    freq = prod["deployment_frequency"]
    # The settings edit is no deployment; both reverts and the rollback are.
    assert freq["deployments"] == 6
    assert freq["by_action"] == {"manual": 1, "promote": 1, "revert": 2, "rollback": 1, "update": 1}
    assert prod["window"]["days"] == 30
    assert freq["per_day"] == 0.2 and freq["per_week"] == 1.4
    assert freq["days_with_deployments"] == 6

    # B was rolled back; D was reverted but the revert was reverted: D stands, it did not fail.
    cfr = prod["change_failure_rate"]
    assert (cfr["changes"], cfr["failed"], cfr["rate"]) == (3, 1, 0.3333)
    assert cfr["failed_changes"] == [{"commit": shas["B"], "app": "ai-app", "reverted_by": shas["rollback"]}]

    # B landed Jan 3 00:00, the rollback's pull request was merged Jan 4 00:00.
    assert prod["time_to_restore"] == {"restores": 1, "median_seconds": DAY, "mean_seconds": DAY}

    lead = prod["lead_time_for_changes"]
    assert lead["commits"] == 0 and lead["median_seconds"] is None
    assert lead["changes_with_unknown_lead_time"] == 3
    assert {u["commit"] for u in lead["unknown"]} == {shas["B"], shas["C"], shas["D"]}

    # The promotion counts when its pull request was merged, and says who authored it.
    promoted = next(d for d in prod["deployments"] if d["action"] == "promote")
    assert promoted["commit"] == shas["C"] and promoted["when"] == "2026-01-06T00:00:00+00:00"


def test_apps_envs_and_window_edges(tmp_path: Path) -> None:
    h, shas = build_scenario(tmp_path, offline_pins())
    report = envbot_json("--repo", str(h.remote), "--offline", *WINDOW)
    assert report["apps"] == ["ai-app", "other"]
    envs = by_env(report)
    assert list(envs) == ["dev", "staging", "prod"]
    # All apps: `other` adds its prod update.
    assert envs["prod"]["deployment_frequency"]["deployments"] == 7
    assert envs["prod"]["change_failure_rate"]["changes"] == 4
    # E never reached prod: a staging deployment only.
    assert envs["staging"]["deployment_frequency"]["deployments"] == 1
    assert envs["staging"]["deployments"][0]["commit"] == shas["E"]
    assert envs["dev"]["deployment_frequency"]["deployments"] == 0
    assert envs["dev"]["change_failure_rate"]["rate"] is None

    # From Jan 5: B and its rollback are outside; C and D did not fail.
    prod = by_env(envbot_json("--repo", str(h.remote), "--offline", "--app", "ai-app", "--env", "prod",
                              "--since", "2026-01-05", "--until", "2026-01-31"))["prod"]
    assert prod["deployment_frequency"]["deployments"] == 4
    assert (prod["change_failure_rate"]["changes"], prod["change_failure_rate"]["failed"]) == (2, 0)

    # A failure is known from reverts after the window: up to Jan 3 12:00 B is one change, failed.
    early = by_env(envbot_json("--repo", str(h.remote), "--offline", "--app", "ai-app", "--env", "prod",
                               "--since", "2026-01-01", "--until", "2026-01-03T12:00:00Z"))["prod"]
    assert early["change_failure_rate"]["failed"] == 1
    assert early["time_to_restore"]["median_seconds"] == DAY


def test_revert_of_revert_chain(tmp_path: Path) -> None:
    """X reverted, the revert reverted, then reverted again: X failed, restored by the first revert."""
    h = History(tmp_path)
    pins = offline_pins()
    h.init({"dev": pins["A"], "staging": pins["A"], "prod": pins["A"]}, "2025-12-01T00:00:00Z")
    x = h.update("prod", pins["B"], "2026-01-02T00:00:00Z")
    r1 = h.git_revert(x, "2026-01-02T06:00:00Z")
    r2 = h.git_revert(r1, "2026-01-03T00:00:00Z")
    h.git_revert(r2, "2026-01-04T00:00:00Z")
    timeline = build_timeline(h.remote, "HEAD", {"environments/prod/values.yaml": ("ai-app", "prod")})
    changes = timeline.changes_of("environments/prod/values.yaml")
    undone = undone_changes(changes)
    assert set(undone) == {x, r2}
    assert undone[x].sha == r1
    prod = by_env(envbot_json("--repo", str(h.remote), "--offline", "--env", "prod", *WINDOW))["prod"]
    assert prod["change_failure_rate"]["failed_changes"][0]["reverted_by"] == r1
    assert prod["time_to_restore"]["median_seconds"] == 6 * 3600


def test_bad_input_is_named(tmp_path: Path) -> None:
    h, _ = build_scenario(tmp_path, offline_pins())
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = run_envbot("metrics", "--repo", str(h.remote), "--since", "last tuesday", env=env, check=False)
    assert "--since 'last tuesday'" in proc.stderr
    proc = run_envbot("metrics", "--repo", str(h.remote), "--env", "qa", env=env, check=False)
    assert "unknown environment 'qa'" in proc.stderr
    proc = run_envbot("metrics", "--repo", str(h.remote), "--since", "2026-02-01", "--until", "2026-01-01",
                      env=env, check=False)
    assert "is not before" in proc.stderr


@pytest.mark.docker
def test_lead_time_from_revision_labels_in_the_registry(tmp_path: Path, oci_registry, base_image: str) -> None:
    """Images labelled with their source revision, pushed to the TLS registry; commit times known."""
    src = source_history(tmp_path)
    name = f"{oci_registry.host}/metrics-app"
    pins = {}
    for release, revision in REVISION_OF.items():
        digest = build_and_push(base_image, name, release.lower(), {
            "org.opencontainers.image.revision": src.commits[revision],
            # A label may name only a forge repository: this local one is ignored for promotion.yaml's.
            "org.opencontainers.image.source": (tmp_path / "elsewhere").as_uri(),
        })
        pins[release] = pin(release.lower(), repository=name, digest=digest)
    h, shas = build_scenario(tmp_path / "envs", pins, source=str(src.path))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REQUESTS_CA_BUNDLE": str(oci_registry.ca_file)}
    envs = by_env(envbot_json("--repo", str(h.remote), "--app", "ai-app", *WINDOW, env=env))

    lead = envs["prod"]["lead_time_for_changes"]
    # B brings c1 (2 days old) and c2 (1 day); C brings c3 (1 day); D brings c4 (12 hours).
    # The rollback and the reverts bring nothing new.
    assert lead["commits"] == 4
    assert lead["median_seconds"] == DAY
    assert lead["mean_seconds"] == (2 * DAY + DAY + DAY + DAY / 2) / 4
    assert lead["changes_with_unknown_lead_time"] == 0
    deployments = {d["commit"]: d for d in envs["prod"]["deployments"]}
    assert deployments[shas["B"]]["lead_commits"] == 2
    assert deployments[shas["B"]]["revision"] == src.commits["c2"]
    assert deployments[shas["D"]]["lead_median_seconds"] == DAY / 2

    # E reached staging only: c1..c5 are new there (staging ran A, built from c0), 11 to 1 days old.
    staging = envs["staging"]["lead_time_for_changes"]
    assert staging["commits"] == 5
    assert staging["median_seconds"] == 7 * DAY

    # The same figures as without lookups for everything but the lead time.
    offline = by_env(envbot_json("--repo", str(h.remote), "--app", "ai-app", "--offline", *WINDOW, env=env))
    for metric in ("deployment_frequency", "change_failure_rate", "time_to_restore"):
        assert offline["prod"][metric] == envs["prod"][metric]


@pytest.mark.docker
def test_lead_time_unknown_when_the_source_is_out_of_reach(tmp_path: Path, oci_registry, base_image: str) -> None:
    name = f"{oci_registry.host}/metrics-nolabel"
    pins = {}
    for release in REVISION_OF:
        labels = {"org.opencontainers.image.revision": "0" * 40, "org.opencontainers.image.version": release}
        if release == "C":
            labels = {"org.opencontainers.image.description": "no revision"}
        digest = build_and_push(base_image, name, f"nl-{release.lower()}", labels)
        pins[release] = pin(f"nl-{release.lower()}", repository=name, digest=digest)
    h, shas = build_scenario(tmp_path / "envs", pins, source=(tmp_path / "gone").as_uri())
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REQUESTS_CA_BUNDLE": str(oci_registry.ca_file)}
    prod = by_env(envbot_json("--repo", str(h.remote), "--app", "ai-app", "--env", "prod", *WINDOW, env=env))["prod"]
    unknown = {u["commit"]: u["reason"] for u in prod["lead_time_for_changes"]["unknown"]}
    assert "no org.opencontainers.image.revision label" in unknown[shas["C"]]
    assert "is not reachable" in unknown[shas["B"]]
    # Which commits D brings depends on what ran before it: C, whose revision is unknown.
    assert "the image deployed before it is unknown" in unknown[shas["D"]]
    assert prod["lead_time_for_changes"]["commits"] == 0
