"""Whole jobs through the harness against the local stand-ins (TLS registry for ACR, Azurite for Blob
Storage, the token-checking git server for Azure Repos, the shared Docker engine), in both repository
layouts. These install Python packages the way the jobs do (pip, with the Cache@2 stand-in keeping the
download cache for the session), so they take minutes; each job is bounded by the harness's step timeout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.pipelines.harness.org import ADMIN_TOKEN, LAYOUTS, Project, project
from tests.pipelines.harness.runner import JobResult, Trigger
from tests.pipelines.harness.tasks import ServiceConnection
from tests.pipelines.test_pipeline_jobs import MAIN, SCHEDULE, ci_triggers

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def pip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Cache@2 store of the session: the first job fills the pip cache, later jobs restore it."""
    return tmp_path_factory.mktemp("pipeline-caches")


@pytest.fixture(scope="module")
def delivery(azurite, oci_registry, base_image, tmp_path_factory: pytest.TempPathFactory):
    """Azurite, and an app image in the TLS registry. Models published here are bytes, not ONNX: published
    without a model card (envbot pins models with or without one)."""
    from tests.bot.conftest import build_and_push

    os.environ.setdefault("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    model_file = tmp_path_factory.mktemp("model") / "model.onnx"
    name = f"{oci_registry.host}/ai-app"
    digest = build_and_push(base_image, name, "first", {"org.opencontainers.image.revision": "0" * 40})
    return {"image": f"{name}@{digest}", "azurite": azurite, "registry": oci_registry,
            "base_image": base_image, "model_file": model_file}


def envbot_env(delivery) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "AZURE_STORAGE_CONNECTION_STRING": delivery["azurite"].connection_string,
            "REQUESTS_CA_BUNDLE": str(delivery["registry"].ca_file), "ENVBOT_GIT_NAME": "platform engineer",
            "ENVBOT_GIT_EMAIL": "platform@example.invalid"}


@pytest.fixture(params=LAYOUTS)
def released(request: pytest.FixtureRequest, delivery, tmp_path: Path, pip_cache: Path):
    """The project with its first release pinned in dev (docs/bootstrap-aks.md section 6), by envbot: the
    image, and iris-logreg 2 from a fresh model store (versions 1 and 2)."""
    from azure.storage.blob import BlobServiceClient

    from app.modelstore import model_uri, publish_model

    service = BlobServiceClient.from_connection_string(delivery["azurite"].connection_string)
    container = service.create_container(f"models-{uuid.uuid4().hex[:12]}")
    delivery["store"] = f"{delivery['azurite'].blob_endpoint}/{container.container_name}"
    for version in ("1", "2"):
        delivery["model_file"].write_bytes(f"model version {version}".encode())
        publish_model(delivery["model_file"], model_uri(delivery["store"], "iris-logreg", version), with_card=False)
    connection_env = {"AZURE_STORAGE_CONNECTION_STRING": delivery["azurite"].connection_string,
                      "REQUESTS_CA_BUNDLE": str(delivery["registry"].ca_file)}
    with project(tmp_path, request.param, cache_dir=pip_cache,
                 variable_groups={"ai-app-delivery": {"registry": delivery["registry"].host,
                                                      "imageRepository": "ai-app",
                                                      "baseImage": delivery["base_image"]}},
                 service_connections={
                     "ai-app-azure": ServiceConnection("azurerm", connection_env),
                     "ai-app-acr": ServiceConnection("dockerregistry", registry=delivery["registry"].host)},
                 ) as proj:
        config = tmp_path / "admin.gitconfig"
        config.write_text(f'[http]\n\textraheader = AUTHORIZATION: bearer {ADMIN_TOKEN}\n')
        proc = subprocess.run([sys.executable, "-m", "bot.main", "update", "dev", "--repo",
                               proj.org.git.url(proj.environments_repository), "--image", delivery["image"],
                               "--model", f"{delivery['store']}/iris-logreg/2/model.onnx"],
                              capture_output=True, text=True, timeout=300,
                              env={**envbot_env(delivery), "GIT_CONFIG_GLOBAL": str(config)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield proj


def dev_values(proj: Project) -> str:
    return subprocess.run(["git", "-C", str(proj.root / "repos" / f"{proj.environments_repository}.git"), "show",
                           "main:environments/dev/values.yaml"], capture_output=True, text=True, check=True).stdout


def assert_succeeded(result: JobResult) -> None:
    assert result.result == "Succeeded", f"{result.stage}.{result.name}: {result.error}\n{result.text[-6000:]}"


def test_model_watch_releases_a_newer_model_to_dev(released: Project, delivery) -> None:
    from app.modelstore import model_uri, publish_model

    quiet = released.run("pipelines/model-watch.yml", SCHEDULE)
    assert_succeeded(quiet.job("WatchModel", "Compare"))
    assert quiet.job("WatchModel", "Update").result == "Skipped"      # nothing new: no second job

    newer = model_uri(delivery["store"], "iris-logreg", "3")
    publish_model(delivery["model_file"], newer, with_card=False)
    before = released.head(released.environments_repository)
    run = released.run("pipelines/model-watch.yml", SCHEDULE)
    assert run.job("WatchModel", "Compare").outputs == {"watch.newModelUri": newer}
    update = run.job("WatchModel", "Update")
    assert_succeeded(update)
    assert f"uri: {newer}" in dev_values(released)
    assert released.head(released.environments_repository) != before
    assert released.environments_repository in update.token_scope
    if released.layout == "single":
        changed = subprocess.run(["git", "-C", str(released.root / "repos" / f"{released.environments_repository}.git"),
                                  "diff", "--name-only", before, "main"], capture_output=True, text=True,
                                 check=True).stdout.split()
        assert changed and not ci_triggers(released.root / "src" / "ai-app" / "azure-pipelines.yml",
                                           "refs/heads/main", changed)


def test_environments_pr_renders_validates_and_comments(released: Project) -> None:
    """Finding 4: in the separate layout promotion.yaml's `../charts/ai-app` is not in the environments
    repository; the job renders with the application repository's chart instead."""
    values = dev_values(released) + 'podAnnotations:\n  example.com/reviewed: "yes"\n'
    merge = released.pull_request(released.environments_repository, {"environments/dev/values.yaml": values},
                                  number=7)
    trigger = Trigger(reason="PullRequest", source_branch="refs/pull/7/merge", repository="environments",
                      target_branch="refs/heads/main", pull_request_id="7")
    run = released.run("pipelines/environments-pr.yml", trigger, resource_commits={"environments": merge})
    job = run.job("Validate", "Environments")
    assert_succeeded(job)
    sources = job.workspace / "s"
    assert "example.com/reviewed" in (sources / "rendered" / "dev.yaml").read_text()
    assert (sources / "changed-environments.txt").read_text().split() == ["dev"]
    thread, = released.org.git.threads
    assert thread["repository"] == released.environments_repository and thread["pull_request"] == 7
    comment = thread["body"]["comments"][0]["content"]
    assert "### dev" in comment and re.search(r"^\+\s+example\.com/reviewed: \"?yes", comment, re.M), comment
    if released.layout == "separate":
        assert "rendering with the application repository's chart" in job.text


def built_stage(image: str, model: str) -> dict[str, JobResult]:
    """The Test and Build stages of an earlier CI run of main that pushed IMAGE with MODEL baked in."""
    return {"Test.Lint": JobResult("Test", "Lint", "Succeeded"), "Test.Tests": JobResult("Test", "Tests", "Succeeded"),
            "Build.BuildImage": JobResult("Build", "BuildImage", "Succeeded", {
                "pushImage.imageRef": image, "pushImage.imageDigest": image.split("@")[1],
                "pushImage.modelUri": model})}


def test_main_pins_the_pushed_image_and_model_in_dev(released: Project, delivery) -> None:
    from tests.bot.conftest import build_and_push

    name = f"{delivery['registry'].host}/ai-app"
    digest = build_and_push(delivery["base_image"], name, f"ci-{released.layout}",
                            {"org.opencontainers.image.revision": released.app_commit})
    model = f"{delivery['store']}/iris-logreg/1/model.onnx"
    before = released.head(released.environments_repository)
    run = released.run("azure-pipelines.yml", MAIN, given=built_stage(f"{name}@{digest}", model))
    assert run.stages["UpdateDevModel"] == "Skipped"
    update = run.job("UpdateDev", "EnvbotUpdate")
    assert_succeeded(update)
    values = dev_values(released)
    assert f'digest: "{digest}"' in values and f"uri: {model}" in values
    assert released.head(released.environments_repository) != before
    assert (released.environments_repository, ) == tuple({r for r, _ in released.org.git.pushes})


def test_a_model_only_release_keeps_devs_image(released: Project, delivery) -> None:
    from app.modelstore import model_uri, publish_model

    model = model_uri(delivery["store"], "iris-logreg", "5")
    publish_model(delivery["model_file"], model, with_card=False)
    image_before = re.search(r'digest: "(sha256:[0-9a-f]{64})"', dev_values(released)).group(1)
    trigger = Trigger(reason="Manual", source_branch="refs/heads/main")
    run = released.run("azure-pipelines.yml", trigger, parameters={"modelUri": model, "modelOnly": "true"},
                       given={"Test.Lint": JobResult("Test", "Lint", "Succeeded"),
                              "Test.Tests": JobResult("Test", "Tests", "Succeeded")})
    assert run.stages["Build"] == "Skipped" and run.stages["UpdateDev"] == "Skipped"
    assert_succeeded(run.job("UpdateDevModel", "EnvbotUpdateModel"))
    values = dev_values(released)
    assert f"uri: {model}" in values and f'digest: "{image_before}"' in values


@pytest.mark.timeout(3600)     # four jobs, each installing the project; each step is bounded by the harness
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ci_on_main_runs_every_job(layout: str, delivery, tmp_path: Path, pip_cache: Path) -> None:
    """The whole of azure-pipelines.yml: lint, the test job (its pytest narrowed to the harness's own
    expression tests through PYTEST_ADDOPTS, the suite being what runs this), fetch the model, build and
    push the image, pin it in dev. The longest test here: every job installs the project."""
    from azure.storage.blob import BlobServiceClient

    from app.modelstore import model_uri, publish_model

    connection_env = {"AZURE_STORAGE_CONNECTION_STRING": delivery["azurite"].connection_string,
                      "REQUESTS_CA_BUNDLE": str(delivery["registry"].ca_file)}
    container = BlobServiceClient.from_connection_string(connection_env["AZURE_STORAGE_CONNECTION_STRING"]) \
        .create_container(f"ci-{uuid.uuid4().hex[:12]}")
    store = f"{delivery['azurite'].blob_endpoint}/{container.container_name}"
    model = model_uri(store, "iris-logreg", "1")
    delivery["model_file"].write_bytes(b"model for the CI run")
    publish_model(delivery["model_file"], model, with_card=False)
    with project(tmp_path, layout, cache_dir=pip_cache,
                 variable_groups={"ai-app-delivery": {"registry": delivery["registry"].host,
                                                      "imageRepository": "ai-app",
                                                      "baseImage": delivery["base_image"]}},
                 service_connections={
                     "ai-app-azure": ServiceConnection("azurerm", connection_env),
                     "ai-app-acr": ServiceConnection("dockerregistry", registry=delivery["registry"].host)},
                 extra_env={"PYTEST_ADDOPTS": "tests/pipelines/test_harness.py -k expression_semantics"},
                 ) as proj:
        config = tmp_path / "admin.gitconfig"
        config.write_text(f'[http]\n\textraheader = AUTHORIZATION: bearer {ADMIN_TOKEN}\n')
        subprocess.run([sys.executable, "-m", "bot.main", "update", "dev", "--repo",
                        proj.org.git.url(proj.environments_repository), "--image", delivery["image"], "--model", model],
                       check=True, capture_output=True, text=True, timeout=300,
                       env={**envbot_env(delivery), "GIT_CONFIG_GLOBAL": str(config)})
        run = proj.run("azure-pipelines.yml", Trigger(reason="Manual", source_branch="refs/heads/main"),
                       parameters={"modelUri": model})
        for job in ("Test.Lint", "Test.Tests", "Build.BuildImage", "UpdateDev.EnvbotUpdate"):
            assert_succeeded(run.jobs[job])
        assert [p.name for p in run.jobs["Test.Tests"].published] == ["junit.xml"]
        image_ref = run.jobs["Build.BuildImage"].outputs["pushImage.imageRef"]
        assert image_ref.startswith(f"{delivery['registry'].host}/ai-app@sha256:")
        assert f'digest: "{image_ref.split("@")[1]}"' in dev_values(proj)
        assert run.stages["UpdateDevModel"] == "Skipped"
