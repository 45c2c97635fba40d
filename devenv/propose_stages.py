"""Stages of the local delivery run that show `envbot propose` closing the loop by itself.

The platform team adds a second app and turns proposals on (a short soak, autoMerge for prod); a dev
release makes `envbot propose` open the staging proposal with a red soak gate; once the soak has
passed the next run turns it green and a reviewer merges it; prod's proposal then opens red and is
merged by propose itself once green. Every propose run prints each proposal's gates.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devenv.stages import StageFailed, run_command

if TYPE_CHECKING:
    from devenv.delivery import DeliveryRun

APP = "ai-app-eu"   # a second deployment of the chart, added by the platform team for this part
STAGING_SOAK_SECONDS = 15
PROD_SOAK_SECONDS = 10


def propose(run: DeliveryRun) -> dict[str, dict[str, Any]]:
    """One `envbot propose --json` run; prints every proposal's action and gate states."""
    envbot = Path(sys.executable).with_name("envbot")
    out = run_command([envbot, "propose", "--app", APP, "--json", "--repo", run.remote_url], env=run.env,
                      show=False)
    print(f"    $ envbot propose --app {APP} --repo {run.remote_url}")
    proposals = {p["env"]: p for p in json.loads(out)["proposals"]}
    for env, proposal in proposals.items():
        gates = ", ".join(f"{g['name']}={g['state']}" for g in proposal["gates"]) or "-"
        print(f"    {proposal['upstream']} -> {env}: {proposal['action']:9} gates: {gates}")
        for gate in proposal["gates"]:
            if gate["state"] != "success":
                print(f"        {gate['name']}: {gate['description']}")
    return proposals


def expect(proposal: dict[str, Any], action: str) -> None:
    if proposal["action"] != action:
        raise StageFailed(f"expected the {proposal['env']} proposal to be {action}, got {proposal['action']}: "
                          f"{proposal['reason']}")


def wait_for_gates(proposal: dict[str, Any]) -> None:
    """Sleep until the proposal's pending gates pass by themselves (its passes_at)."""
    if not proposal["passes_at"]:
        raise StageFailed(f"the {proposal['env']} proposal has a gate that does not pass by itself: "
                          f"{proposal['reason'] or proposal['gates']}")
    seconds = (datetime.fromisoformat(proposal["passes_at"]) - datetime.now(UTC)).total_seconds() + 1
    if seconds > 0:
        print(f"    waiting {seconds:.0f}s for the {proposal['env']} gates (until {proposal['passes_at']})")
        time.sleep(seconds)


def enable_proposals(run: DeliveryRun) -> None:
    """The platform team adds a second deployment of the chart, app APP (dev, staging and prod all on
    dev's current release), with a short soak for staging and prod and autoMerge for prod.

    A separate app keeps ai-app's story (its rollback, the release prod runs) as it is: propose runs
    with --app APP.
    """
    from bot.policy import load_policy
    from bot.values import edit_pin_text, read_pin_text

    with run.platform_change(f"Add {APP}; proposals: short soak for staging and prod, autoMerge for prod") as clone:
        root = clone / "environments"
        release = read_pin_text((root / "dev" / "values.yaml").read_text(), "dev/values.yaml")
        for env in ("dev", "staging", "prod"):
            text = (root / env / "values.yaml").read_text()
            (root / env / f"{APP}.yaml").write_text(edit_pin_text(text, release, f"{env}/{APP}.yaml"))
            # Its own chart pin, starting where ai-app's is: the chart moves with its releases too.
            shutil.copyfile(root / env / "chart.yaml", root / env / f"{APP}-chart.yaml")
        chart = load_policy(clone).app("ai-app").chart
        policy = root / "promotion.yaml"
        text = policy.read_text()
        text = text.replace("\napps:\n", f'\napps:\n  {APP}:\n    values: "{{env}}/{APP}.yaml"\n'
                                         f'    chartPin: "{{env}}/{APP}-chart.yaml"\n'
                                         f"    chart:\n      repo: {chart.repo}\n      name: {chart.name}\n", 1)
        blocks = text.split("  - name: ")
        for index, block in enumerate(blocks):
            name = block.split("\n", 1)[0].strip()
            soak = {"staging": STAGING_SOAK_SECONDS, "prod": PROD_SOAK_SECONDS}.get(name)
            if soak is None:
                continue
            lines = [f"    soak: {soak}s  # local run: a short soak for proposals"
                     if ln.lstrip().startswith("soak:") else ln for ln in block.split("\n")]
            if name == "prod":
                lines = [ln for ln in lines if not ln.lstrip().startswith(("autoMerge:", "mergeStrategy:"))]
                lines.insert(1, "    autoMerge: true  # propose merges prod once every gate is green")
                lines.insert(2, "    mergeStrategy: squash")
            blocks[index] = "\n".join(lines)
        policy.write_text("  - name: ".join(blocks))
    print(f"    app {APP}; staging soak {STAGING_SOAK_SECONDS}s; prod soak {PROD_SOAK_SECONDS}s, autoMerge: true")


def model_only_release(run: DeliveryRun) -> None:
    """A model-only release to dev (no image build): `envbot update dev --app APP --model URI` (model v1;
    dev runs model v2)."""
    run.envbot("update", "dev", "--app", APP, "--model", run.models["1"]["uri"])


def staging_proposal_opens_red(run: DeliveryRun) -> None:
    staging = propose(run)["staging"]
    expect(staging, "opened")
    if next(g for g in staging["gates"] if g["name"] == "soak")["state"] != "pending":
        raise StageFailed("the fresh staging proposal's soak gate is not pending")
    run.staging_proposal = staging


def staging_turns_green(run: DeliveryRun) -> None:
    wait_for_gates(run.staging_proposal)
    staging = propose(run)["staging"]
    expect(staging, "unchanged")
    if not staging["green"]:
        raise StageFailed(f"the staging proposal is not green after its soak: {staging['gates']}")


def reviewer_merges_staging(run: DeliveryRun) -> None:
    run.merge_pull_request(f"envbot/promote-{APP}-staging", "proposal for staging")


def prod_merges_itself(run: DeliveryRun) -> None:
    prod = propose(run)["prod"]
    expect(prod, "opened")
    wait_for_gates(prod)
    prod = propose(run)["prod"]
    expect(prod, "merged")
    settled = propose(run)
    for env in ("staging", "prod"):
        expect(settled[env], "unchanged")


def stages(run: DeliveryRun) -> list[tuple[str, object]]:
    return [
        (f"Platform team: add {APP}, proposals on (short soak, prod autoMerge)", lambda: enable_proposals(run)),
        ("Model-only release: envbot update dev --model v1", lambda: model_only_release(run)),
        ("envbot propose: staging proposal opened, soak red", lambda: staging_proposal_opens_red(run)),
        ("Soak passes: envbot propose turns staging green", lambda: staging_turns_green(run)),
        ("Reviewer merges the staging proposal", lambda: reviewer_merges_staging(run)),
        ("envbot propose: prod proposal opened, merged by propose once green", lambda: prod_merges_itself(run)),
    ]
