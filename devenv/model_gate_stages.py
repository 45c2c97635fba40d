"""Stages of the local delivery run that show the model release gates (docs/model-releases.md).

The platform team turns on staging's model gates (breaking signature changes refused, accuracy at
least 0.8 and no drop over 0.02) with an evaluation data set envbot measures itself. The data scientist
then offers three candidates through dev: v3 renames the input (refused with the signature diff), v4
was trained on noisy labels (refused with both measured figures), v5 is a compatible retrain at least
as good (promoted, its pull request carrying the Model section, merged).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from devenv.stages import StageFailed

if TYPE_CHECKING:
    from devenv.delivery import DeliveryRun

APP = "ai-app"
MODEL_NAME = "iris-logreg"
DATASET_KEY = "iris-eval/1/eval.csv"
GATES = """    modelGates:                    # local run: staging's model gates
      signature: compatible
      metrics:
        accuracy: {min: 0.8, maxDrop: 0.02}
"""
# Candidates: version -> extra `ai-app train` arguments and whether staging's gates let it through.
CANDIDATES = {"3": (["--input-name", "features"], False), "4": (["--label-noise", "0.7"], False), "5": ([], True)}


def enable_model_gates(run: DeliveryRun) -> None:
    """Upload the evaluation data set to the store and name it, with staging's gates, in promotion.yaml."""
    from azure.storage.blob import BlobServiceClient

    from app.training import write_eval_dataset

    assert run.azurite is not None
    data = run.workdir / "eval.csv"
    sha256 = write_eval_dataset(data, rows=1000)
    BlobServiceClient.from_connection_string(run.azurite.connection_string).get_blob_client(
        "models", DATASET_KEY).upload_blob(data.read_bytes(), overwrite=False)
    uri = f"{run.azurite.blob_endpoint}/models/{DATASET_KEY}"
    with run.platform_change("Model gates for staging, measured on the iris evaluation set") as clone:
        policy = next(p for p in (clone / "promotion.yaml", clone / "environments" / "promotion.yaml") if p.is_file())
        text = policy.read_text()
        app_line = f"  {APP}:"
        if not any(line.split("#")[0].rstrip() == app_line for line in text.splitlines()) \
                or "\n  - name: staging\n" not in text:
            raise StageFailed(f"{policy.name}: no app {APP} or no staging environment to gate")
        evaluation = (f"    evaluation:                    # local run: measured by envbot on every promotion\n"
                      f"      uri: {uri}\n      sha256: \"{sha256}\"\n      label: label\n      metric: accuracy\n")
        lines = text.splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.split("#")[0].rstrip() == app_line)
        lines.insert(at + 1, evaluation)
        text = "".join(lines)
        head, _, tail = text.partition("\n  - name: staging\n")
        block, sep, rest = tail.partition("\n  - name: ")
        text = head + "\n  - name: staging\n" + block.rstrip("\n") + "\n" + GATES.rstrip("\n") + sep + rest
        policy.write_text(text)
    print(f"    evaluation set {uri} (1,000 rows, sha256 {sha256[:12]}); staging: signature compatible, "
          "accuracy >= 0.8, drop <= 0.02")


def publish_candidates(run: DeliveryRun) -> None:
    out = run.workdir / "models"
    for version, (extra, _) in CANDIDATES.items():
        run.python("-m", "app", "train", "--out", out, "--model-name", MODEL_NAME, "--model-version", version,
                   *extra, "--json")
        path = out / MODEL_NAME / version / "model.onnx"
        published = run.python("-m", "app", "publish-model", path, "--uri", run.model_uri(version), "--json")
        run.models[version] = json.loads(published)
    print("    v3: input renamed to 'features'; v4: trained on 70% noisy labels; v5: a compatible retrain")


def _promote(run: DeliveryRun, *extra: str) -> subprocess.CompletedProcess[str]:
    envbot = Path(sys.executable).with_name("envbot")
    return subprocess.run([envbot, "promote", "dev", "staging", *extra, "--repo", run.remote_url], env=run.env,
                          capture_output=True, text=True, timeout=600)


def _wait_for_soak(run: DeliveryRun, limit: float = 120.0) -> None:
    """Until staging's soak gate no longer holds the candidate (the local policy's soak is seconds)."""
    deadline = time.monotonic() + limit
    while "soak:" in (refusal := _promote(run, "--dry-run").stderr):
        if time.monotonic() > deadline:
            raise StageFailed(f"staging's soak did not pass in {limit:.0f}s:\n{refusal}")
        time.sleep(3)


def offer(run: DeliveryRun, version: str) -> None:
    """dev takes the candidate (a model-only update), its soak passes, then envbot promotes it to staging."""
    run.envbot("update", "dev", "--model", run.models[version]["uri"])
    _wait_for_soak(run)
    proc = _promote(run)
    _, passes = CANDIDATES[version]
    print(f"    $ envbot promote dev staging   # model v{version}")
    shown = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "model-" in line or "Measured by envbot" in line or "blocked" in line]
    for line in shown[:12]:
        print(f"      {line.strip()}")
    if passes:
        if proc.returncode != 0:
            raise StageFailed(f"model v{version} should pass staging's gates:\n{proc.stderr}")
        if "### Model" not in proc.stdout or "Measured by envbot" not in proc.stdout:
            raise StageFailed(f"model v{version}'s pull request has no measured Model section:\n{proc.stdout}")
        run.merge_pull_request(f"envbot/promote-{APP}-staging", f"model v{version} to staging")
        return
    if proc.returncode == 0:
        raise StageFailed(f"model v{version} should have been refused by staging's gates:\n{proc.stdout}")
    expected = "model-signature:" if version == "3" else "model-metric: metric accuracy:"
    if expected not in proc.stderr:
        raise StageFailed(f"model v{version} was refused, but not by the {expected} gate:\n{proc.stderr}")


def stages(run: DeliveryRun) -> list[tuple[str, object]]:
    return [
        ("Platform team: staging's model gates, with an evaluation set envbot measures",
         lambda: enable_model_gates(run)),
        ("Data scientist: publish model candidates v3, v4, v5", lambda: publish_candidates(run)),
        ("Model v3 (input renamed): promotion refused with the signature diff", lambda: offer(run, "3")),
        ("Model v4 (worse on the evaluation set): refused with both figures", lambda: offer(run, "4")),
        ("Model v5 (compatible, as good): promoted to staging with its Model section, merged",
         lambda: offer(run, "5")),
    ]
