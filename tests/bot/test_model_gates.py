"""Model release gates end to end: cards in Azurite, envbot promote/diff/verify as subprocesses.

Models are trained by `python -m app train` on iris: v1 and v2 answer alike, v3 renames the input,
v4 was trained on noisy labels. The evaluation data set is iris resampled with noise, in the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app.modelcard import CARD_FILE
from app.modelstore import parse_uri
from bot.values import ImagePin, ModelPin, ReleasePin, edit_pin_text
from tests.bot.conftest import PublishedModel, PushedImage
from tests.bot.envrepo import EnvRepo, make_env_repo, policy_text, run_envbot

pytestmark = pytest.mark.docker
CONTAINER = "gates-models"


@pytest.fixture(scope="module")
def gate_store(azurite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    from app.modelstore import publish_model
    from app.training import write_eval_dataset

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(ResourceExistsError):
        service.create_container(CONTAINER)
    out = tmp_path_factory.mktemp("gate-models")
    variants = {"1": [], "2": [], "3": ["--input-name", "features"], "4": ["--label-noise", "0.7"]}
    data = out / "eval.csv"
    data_sha = write_eval_dataset(data, rows=400)
    data_uri = f"{azurite.blob_endpoint}/{CONTAINER}/iris-eval/1/eval.csv"
    with contextlib.suppress(ResourceExistsError):
        service.get_blob_client(CONTAINER, "iris-eval/1/eval.csv").upload_blob(data.read_bytes())
    metrics = out / "metrics.json"
    metrics.write_text(json.dumps({"dataset": {"name": "iris-eval", "sha256": data_sha},
                                   "metrics": {"accuracy": 0.95}}))
    previous = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    published = {}
    try:
        for version, extra in variants.items():
            subprocess.run([sys.executable, "-m", "app", "train", "--out", str(out), "--model-name", "iris-logreg",
                            "--model-version", version, *extra], check=True, capture_output=True)
            uri = f"{azurite.blob_endpoint}/{CONTAINER}/iris-logreg/{version}/model.onnx"
            info = publish_model(out / "iris-logreg" / version / "model.onnx", uri,
                                 metrics_file=metrics if version == "1" else None, source=f"commit-{version}")
            published[version] = PublishedModel(uri, info.sha256, version)
    finally:
        if previous is None:
            os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
        else:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = previous
    return {"models": published, "data_uri": data_uri, "data_sha": data_sha}


GATES = """    modelGates:
      signature: compatible
      metrics:
        accuracy: {min: 0.8, maxDrop: 0.02}
"""


def gated_policy(data_uri: str, data_sha: str) -> str:
    text = policy_text()
    text = text.replace("    soak: 30m\n", "    soak: 30m\n" + GATES, 1)
    return text.replace("      path: ../charts/ai-app\n", "      path: ../charts/ai-app\n"
                        f"    evaluation:\n      uri: {data_uri}\n      sha256: {data_sha}\n"
                        "      label: label\n      metric: accuracy\n", 1)


def pin(image: PushedImage, model: PublishedModel) -> ReleasePin:
    return ReleasePin(ImagePin(image.name, image.tag, image.digest),
                      ModelPin("blob", "iris-logreg", model.version, model.uri, model.sha256))


@pytest.fixture
def gated_repo(tmp_path: Path, images: dict[str, PushedImage], gate_store: dict, charts) -> EnvRepo:
    models = gate_store["models"]
    # Every environment pins chart build 1 as well (the release is image + model + chart).
    pins = {env: replace(release, chart=charts["1"]) for env, release in (
        ("dev", pin(images["v2"], models["2"])), ("staging", pin(images["v1"], models["1"])),
        ("prod", pin(images["v1"], models["1"])))}
    return make_env_repo(tmp_path, policy=gated_policy(gate_store["data_uri"], gate_store["data_sha"]), pins=pins)


def set_dev_model(repo: EnvRepo, images: dict[str, PushedImage], model: PublishedModel) -> None:
    path = repo.work / "environments" / "dev" / "values.yaml"
    path.write_text(edit_pin_text(path.read_text(), pin(images["v2"], model), "dev/values.yaml"))
    repo.commit_as_human(f"dev: model {model.version}", date="2024-02-01T12:00:00+00:00")


def test_a_compatible_better_model_passes_with_a_model_section(gated_repo: EnvRepo, bot_env: dict[str, str]) -> None:
    proc = run_envbot("promote", "dev", "staging", "--repo", str(gated_repo.remote), "--dry-run", env=bot_env)
    assert "### Model" in proc.stdout
    assert "`iris-logreg@1` | `iris-logreg@2`" in proc.stdout
    assert "Signature: unchanged (input FP32[?, 4])" in proc.stdout
    assert "Measured by envbot on 400 rows: accuracy" in proc.stdout and "prediction agreement 100.00%" in proc.stdout
    assert "| lineage | commit-1 | commit-2 |" in proc.stdout


def test_a_renamed_input_is_refused_with_the_signature_diff(
        gated_repo: EnvRepo, bot_env: dict[str, str], images: dict[str, PushedImage], gate_store: dict) -> None:
    set_dev_model(gated_repo, images, gate_store["models"]["3"])
    before = gated_repo.head()
    proc = run_envbot("promote", "dev", "staging", "--repo", str(gated_repo.remote), env=bot_env, check=False)
    assert "model-signature: input input: removed (input FP32[?, 4] -> -): breaking" in proc.stderr
    assert "model-signature: input features: added (- -> features FP32[?, 4]): breaking" in proc.stderr
    assert gated_repo.head() == before


def test_a_worse_model_is_refused_with_both_figures_and_override_records_each_gate(
        gated_repo: EnvRepo, bot_env: dict[str, str], images: dict[str, PushedImage], gate_store: dict) -> None:
    set_dev_model(gated_repo, images, gate_store["models"]["4"])
    before = gated_repo.head()
    proc = run_envbot("promote", "dev", "staging", "--repo", str(gated_repo.remote), env=bot_env, check=False)
    line = next(x for x in proc.stderr.splitlines() if "model-metric" in x)
    assert "model-metric: metric accuracy: " in line and " -> " in line and "drops" in line
    assert gated_repo.head() == before
    run_envbot("promote", "dev", "staging", "--repo", str(gated_repo.remote), "--override-reason",
               "accepted for the experiment", env=bot_env)
    branch = "envbot/promote-ai-app-staging"
    message = gated_repo.message(branch)
    assert "Envbot-Override: accepted for the experiment" in message
    assert "Envbot-Bypassed-Gate: model-metric" in message


def test_diff_shows_the_model_section_and_verify_checks_cards(
        gated_repo: EnvRepo, bot_env: dict[str, str], gate_store: dict, azurite) -> None:
    proc = run_envbot("diff", "staging", "dev", "--repo", str(gated_repo.remote), env=bot_env)
    assert "### Model" in proc.stdout and "Measured by envbot" in proc.stdout
    proc = run_envbot("verify", "--repo", str(gated_repo.remote), "--json", env=bot_env)
    details = [r["detail"] for r in json.loads(proc.stdout)["results"] if r["check"] == "model"]
    assert details and all(d.endswith("(card ok)") for d in details)


def test_verify_fails_on_a_tampered_card(
        tmp_path: Path, bot_env: dict[str, str], images: dict[str, PushedImage], azurite, trained_models) -> None:
    from azure.storage.blob import BlobServiceClient

    from app.modelstore import publish_model

    uri = f"{azurite.blob_endpoint}/{CONTAINER}/tamper-{tmp_path.name}/1/model.onnx"
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    try:
        info = publish_model(trained_models["iris-forest"].path, uri)
    finally:
        os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    forged = json.loads(info.card.to_bytes())
    forged["source"] = "someone else"
    key = parse_uri(uri).beside(CARD_FILE).key
    BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        CONTAINER, key).upload_blob(json.dumps(forged).encode(), overwrite=True)
    model = PublishedModel(uri, info.sha256, "1")
    repo = make_env_repo(tmp_path, pins={"dev": pin(images["v2"], model)})
    proc = run_envbot("verify", "dev", "--repo", str(repo.remote), env=bot_env, check=False)
    assert "changed after publishing" in proc.stdout


def test_promotion_yaml_model_gate_errors_name_file_and_line(tmp_path: Path, bot_env: dict[str, str]) -> None:
    bad = policy_text().replace("    soak: 30m\n", "    soak: 30m\n    modelGates:\n      signature: loose\n", 1)
    repo = make_env_repo(tmp_path, policy=bad)
    proc = run_envbot("status", "--repo", str(repo.remote), env=bot_env, check=False)
    assert "promotion.yaml:" in proc.stderr and "modelGates.signature: 'loose' is not one of compatible, any" \
        in proc.stderr


def test_a_replaced_model_out_of_reach_is_noted_not_blocking(
        tmp_path: Path, bot_env: dict[str, str], images: dict[str, PushedImage], gate_store: dict) -> None:
    # The environments template pins sample models in an Azure account this identity cannot reach.
    unreachable = PublishedModel("https://aiappmodels.blob.core.windows.net/models/iris-logreg/2/model.onnx",
                            "02378fc99d318e920733a6cb5551a252410bf1bc403c321f64e6f5a44f9f62b1", "2")
    models = gate_store["models"]
    pins = {"dev": pin(images["v2"], models["2"]), "staging": pin(images["v1"], unreachable)}
    repo = make_env_repo(tmp_path, policy=gated_policy(gate_store["data_uri"], gate_store["data_sha"]), pins=pins)
    proc = run_envbot("promote", "dev", "staging", "--repo", str(repo.remote), "--dry-run", env=bot_env)
    assert "Note: the replaced model could not be read" in proc.stdout
    assert "Measured by envbot on 400 rows: accuracy" in proc.stdout and "(first release)" in proc.stdout
