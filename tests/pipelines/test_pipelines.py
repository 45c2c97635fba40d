"""The Azure Pipelines definitions: schema-valid, and wired the way docs/pipelines.md says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.azure_schema import (
    REPO_ROOT,
    SCHEMA_PATH,
    hoist_expressions,
    load_yaml,
    schema_errors,
    validator_for,
)

MAIN = REPO_ROOT / "azure-pipelines.yml"
PIPELINES = [MAIN, REPO_ROOT / "pipelines" / "environments-pr.yml", REPO_ROOT / "pipelines" / "model-watch.yml",
             REPO_ROOT / "pipelines" / "promotion.yml"]
TEMPLATES = sorted((REPO_ROOT / "pipelines" / "templates").glob("*.yml")) + sorted(
    (REPO_ROOT / "pipelines" / "variables").glob("*.yml")
)
ALL_FILES = PIPELINES + TEMPLATES


def rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def walk(node: Any):
    """Every mapping in the document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def steps_of(path: Path) -> list[dict]:
    return [m for m in walk(load_yaml(path)) if any(k in m for k in ("bash", "script", "task", "checkout"))]


def scripts_of(path: Path) -> list[tuple[str, str]]:
    """(step name, shell text) of every bash/script step and AzureCLI inline script."""
    found = []
    for step in steps_of(path):
        name = step.get("displayName", "?")
        if "bash" in step or "script" in step:
            found.append((name, step.get("bash") or step.get("script")))
        elif isinstance(step.get("inputs"), dict) and "inlineScript" in step["inputs"]:
            found.append((name, step["inputs"]["inlineScript"]))
    return found


def stages(path: Path) -> list[dict]:
    return load_yaml(path)["stages"]


def stage(name: str) -> dict:
    return next(s for s in stages(MAIN) if s["stage"] == name)


# --- schema -------------------------------------------------------------------------------------


def test_schema_is_the_packaged_draft07_schema() -> None:
    assert SCHEMA_PATH.is_file(), f"{SCHEMA_PATH} missing: run scripts/bootstrap (check-jsonschema)"
    assert validator_for(None).schema["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize("path", PIPELINES, ids=rel)
def test_pipeline_is_valid_against_the_azure_pipelines_schema(path: Path) -> None:
    assert schema_errors(path, template=False) == []


@pytest.mark.parametrize("path", TEMPLATES, ids=rel)
def test_template_is_valid_against_its_template_definition(path: Path) -> None:
    assert schema_errors(path, template=True) == []


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ({"displayName": "x", "task": "AzureCLI@2", "inputs": {"azureSubscription": "c", "scriptType": "bash"}},
         "task must be the first key"),
        ({"task": "AzureCLI@2", "inputs": {"scriptType": "bash"}}, "required input missing"),
        ({"task": "AzureCLI@2", "inputs": {"azureSubscription": "c", "scriptType": "bash",
                                           "addSpnToEnvironment": "maybe"}}, "not a boolean"),
        ({"task": "NoSuchTask@9", "inputs": {}}, "unknown task"),
        ({"bash": "echo", "retries": "3"}, "unknown step key"),
        ({"bash": "echo", "continueOnError": "perhaps"}, "schema boolean pattern"),
    ],
)
def test_validator_rejects_what_azure_rejects(step: dict, reason: str) -> None:
    assert not validator_for("step").is_valid(step), reason


def test_validator_accepts_azure_spellings() -> None:
    # Task names, enum inputs and booleans are case-insensitive in Azure Pipelines.
    step = {"task": "azurecli@2", "inputs": {"azureSubscription": "c", "scriptType": "BASH",
                                             "addSpnToEnvironment": "True"}}
    assert validator_for("step").is_valid(step)


def test_template_expressions_are_hoisted() -> None:
    doc = {"steps": [{"${{ if eq(parameters.x, true) }}": [{"bash": "echo"}]}, {"bash": "echo 2"}]}
    assert hoist_expressions(doc) == {"steps": [{"bash": "echo"}, {"bash": "echo 2"}]}


# --- triggers and stages --------------------------------------------------------------------------


def test_main_pipeline_triggers_on_main_and_validates_pull_requests() -> None:
    doc = load_yaml(MAIN)
    assert doc["trigger"]["branches"]["include"] == ["main"]
    assert doc["pr"]["branches"]["include"] == ["main"]


def test_stages_run_in_order_test_build_updatedev() -> None:
    names = [s["stage"] for s in stages(MAIN)]
    assert names[:3] == ["Test", "Build", "UpdateDev"]
    assert stage("Test").get("dependsOn") is None
    assert stage("Build")["dependsOn"] == "Test"
    assert stage("UpdateDev")["dependsOn"] == "Build"
    assert stage("UpdateDevModel")["dependsOn"] == "Test"


@pytest.mark.parametrize("name", ["UpdateDev", "UpdateDevModel"])
def test_dev_updates_never_run_for_pull_requests_and_only_from_main(name: str) -> None:
    condition = re.sub(r"\s+", "", stage(name)["condition"])
    assert condition.startswith("and(succeeded(),")
    assert "ne(variables['Build.Reason'],'PullRequest')" in condition
    assert "eq(variables['Build.SourceBranch'],'refs/heads/main')" in condition


def test_model_only_release_skips_the_image_build() -> None:
    assert "eq(variables['modelOnly'],'False')" in re.sub(r"\s+", "", stage("Build")["condition"])
    assert "eq(variables['modelOnly'],'True')" in re.sub(r"\s+", "", stage("UpdateDevModel")["condition"])
    params = {p["name"]: p for p in load_yaml(MAIN)["parameters"]}
    assert params["modelUri"]["default"] == "" and params["modelSha256"]["default"] == ""
    assert params["modelOnly"]["type"] == "boolean"


def test_test_stage_lints_and_publishes_junit_results() -> None:
    test_scripts = "\n".join(text for _, text in scripts_of_stage("Test"))
    assert "ruff check" in test_scripts and "hadolint app/Dockerfile" in test_scripts
    assert "--junitxml=" in test_scripts
    publish = [s for s in walk(stage("Test")) if s.get("task") == "PublishTestResults@2"]
    assert publish and publish[0]["inputs"]["testResultsFormat"] == "JUnit"
    assert publish[0]["condition"] == "succeededOrFailed()"


def scripts_of_stage(name: str) -> list[tuple[str, str]]:
    return [(s.get("displayName", "?"), s.get("bash", "")) for s in walk(stage(name)) if "bash" in s]


def test_build_fetches_the_model_through_the_federated_connection() -> None:
    fetch = load_yaml(REPO_ROOT / "pipelines" / "templates" / "fetch-model.yml")["steps"][0]
    assert fetch["task"] == "AzureCLI@2"
    script = fetch["inputs"]["inlineScript"]
    assert "python pipelines/scripts/model_info.py" in script
    assert 'python -m app fetch-model --uri "$MODEL_URI" --sha256 "$MODEL_SHA256"' in script
    for variable in ("modelName", "modelVersion", "modelSha256"):
        assert f"##vso[task.setvariable variable={variable}]" in script
    used = [s for s in walk(stage("Build")) if s.get("template") == "pipelines/templates/fetch-model.yml"]
    assert used[0]["parameters"]["modelSha256"] == "$(modelSha256)"
    assert used[0]["parameters"]["destDir"] == "build/model"


def dockerfile_build_args() -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (REPO_ROOT / "app" / "Dockerfile").read_text(), re.M))


def build_step() -> dict:
    return next(s for s in walk(stage("Build")) if s.get("displayName") == "docker build")


def test_build_passes_exactly_the_dockerfiles_arguments_and_target() -> None:
    script = build_step()["bash"]
    passed = set(re.findall(r"--build-arg (\w+)=", script))
    assert passed == dockerfile_build_args()
    (target,) = re.findall(r"--target (\S+)", script)
    assert re.search(rf"^FROM \S+ AS {target}$", (REPO_ROOT / "app" / "Dockerfile").read_text(), re.M)
    # Labels come from the Dockerfile's LABELs through the arguments, not from the command line.
    assert "--label" not in script
    assert script.rstrip().splitlines()[-2].strip() == "."  # the context is the repository root
    # Every argument's value reaches the script through env:, and the model's from fetch-model.
    env = build_step()["env"]
    assert {"MODEL_SHA256": "$(modelSha256)", "MODEL_NAME": "$(modelName)",
            "MODEL_VERSION": "$(modelVersion)"}.items() <= env.items()


def test_build_stages_the_inputs_the_dockerfile_copies() -> None:
    copied = set(re.findall(r"^COPY (build/\S+?)/?\s", (REPO_ROOT / "app" / "Dockerfile").read_text(), re.M))
    assert copied == {"build/wheelhouse", "build/dist", "build/model/model.onnx"}
    stage_step = next(s for s in walk(stage("Build")) if s.get("displayName") == "Stage the wheelhouse and the "
                      "project wheel")
    # The same functions as the local image builds (devenv/image.py), not a second recipe.
    assert "from devenv.image import build_project_wheel, build_wheelhouse" in stage_step["bash"]
    from devenv import image

    assert image.WHEELHOUSE.relative_to(REPO_ROOT).as_posix() == "build/wheelhouse"
    assert image.DIST_DIR.relative_to(REPO_ROOT).as_posix() == "build/dist"


def test_build_pushes_both_tags_and_outputs_the_digest() -> None:
    build = "\n".join(text for _, text in scripts_of_stage("Build"))
    assert 'docker push "$IMAGE_NAME:$REVISION"' in build and 'docker push "$IMAGE_NAME:$BUILD_ID"' in build
    assert "{{index .RepoDigests 0}}" in build
    assert "##vso[task.setvariable variable=imageDigest;isOutput=true]" in build
    push = next(s for s in walk(stage("Build")) if s.get("name") == "pushImage")
    assert "ne(variables['Build.Reason'], 'PullRequest')" in push["condition"]


ENVBOT_TEMPLATE = REPO_ROOT / "pipelines" / "templates" / "envbot-update-dev.yml"


def envbot_update_script() -> str:
    return next(text for name, text in scripts_of(ENVBOT_TEMPLATE) if name == "envbot update dev")


def test_updatedev_pins_the_image_by_digest_from_the_build_stage_output() -> None:
    job = stage("UpdateDev")["jobs"][0]
    assert job["variables"]["imageRef"] == "$[ stageDependencies.Build.BuildImage.outputs['pushImage.imageRef'] ]"
    # The output variable's job and step exist in the Build stage under those names.
    build_job = stage("Build")["jobs"][0]
    assert build_job["job"] == "BuildImage"
    assert any(s.get("name") == "pushImage" for s in build_job["steps"])
    update = next(s for s in job["steps"] if s.get("template"))
    assert update["parameters"]["imageRef"] == "$(imageRef)"
    script = envbot_update_script()
    assert "*@sha256:*) ;;" in script  # anything else is refused before envbot runs
    assert 'args=(update dev --repo "$repo_url" --image "$IMAGE_REF")' in script


def test_model_only_release_passes_devs_current_image() -> None:
    update = next(s for s in stage("UpdateDevModel")["jobs"][0]["steps"] if s.get("template"))
    assert "imageRef" not in update["parameters"]
    script = envbot_update_script()
    assert 'envbot status --repo "$repo_url" --json | python "$SCRIPTS_DIR/pinned_image.py" dev' in script


def test_every_dev_update_goes_through_the_one_template() -> None:
    for path in PIPELINES:
        for name, text in scripts_of(path):
            assert not re.search(r"\benvbot update\b", text), f"{rel(path)}: {name!r} runs envbot update itself"
    users = [(rel(src), t) for src, t, _ in template_references() if t == str(ENVBOT_TEMPLATE.resolve())]
    assert {src for src, _ in users} == {"azure-pipelines.yml", "pipelines/model-watch.yml"}


def test_envbot_update_gets_the_token_through_the_environment_only() -> None:
    step = next(s for s in steps_of(ENVBOT_TEMPLATE) if s.get("displayName") == "envbot update dev")
    assert step["env"]["SYSTEM_ACCESSTOKEN"] == "$(System.AccessToken)"
    script = envbot_update_script()
    assert 'export GIT_CONFIG_GLOBAL="$git_config"' in script and "trap 'rm -f \"$git_config\"' EXIT" in script
    # envbot clones and pushes the Azure Repos URL itself; no checkout holds a persisted token.
    for path in ALL_FILES:
        for checkout in (s for s in steps_of(path) if "checkout" in s):
            assert checkout.get("persistCredentials") != "true", rel(path)


def test_envbot_steps_get_the_access_token_explicitly() -> None:
    for path in ALL_FILES:
        for step in steps_of(path):
            text = step.get("bash") or (step.get("inputs") or {}).get("inlineScript", "")
            if re.search(r"\benvbot (update|status)\b", text) or "post_pr_comment.py" in text:
                assert step.get("env", {}).get("SYSTEM_ACCESSTOKEN") == "$(System.AccessToken)", rel(path)


def test_model_watch_updates_dev_only_when_a_newer_model_exists() -> None:
    jobs = {j["job"]: j for j in load_yaml(REPO_ROOT / "pipelines" / "model-watch.yml")["stages"][0]["jobs"]}
    update = jobs["Update"]
    assert update["dependsOn"] == "Compare"
    assert "ne(dependencies.Compare.outputs['watch.newModelUri'], '')" in update["condition"]
    assert update["variables"]["newModelUri"] == "$[ dependencies.Compare.outputs['watch.newModelUri'] ]"
    watch = next(s for s in jobs["Compare"]["steps"] if s.get("name") == "watch")
    assert "##vso[task.setvariable variable=newModelUri;isOutput=true]" in watch["inputs"]["inlineScript"]


def test_model_watch_is_scheduled() -> None:
    doc = load_yaml(REPO_ROOT / "pipelines" / "model-watch.yml")
    assert doc["trigger"] == "none" and doc["pr"] == "none"
    assert doc["schedules"][0]["branches"]["include"] == ["main"]
    assert len(doc["schedules"][0]["cron"].split()) == 5


def test_environments_pr_pipeline_renders_validates_and_comments() -> None:
    text = "\n".join(t for _, t in scripts_of(REPO_ROOT / "pipelines" / "environments-pr.yml"))
    assert "render_environment.py --repo environments" in text and "kubernetes-validate --strict" in text
    assert 'envbot diff --repo environments "$env@$BASE_COMMIT" "$env@HEAD"' in text
    assert "post_pr_comment.py" in text


# --- templates ------------------------------------------------------------------------------------


def template_references() -> list[tuple[Path, str, dict]]:
    """(file, resolved template path, parameters passed) of every `template:` reference."""
    found = []
    for path in ALL_FILES:
        for mapping in walk(hoist_expressions(load_yaml(path))):
            if "template" in mapping and isinstance(mapping["template"], str):
                target = mapping["template"]
                base = REPO_ROOT if path == MAIN else path.parent
                found.append((path, str((base / target).resolve()), mapping.get("parameters") or {}))
    return found


def test_templates_are_referenced() -> None:
    referenced = {target for _, target, _ in template_references()}
    assert {str(p.resolve()) for p in TEMPLATES} <= referenced


@pytest.mark.parametrize(("source", "target", "passed"), template_references(),
                         ids=lambda v: rel(v) if isinstance(v, Path) else None)
def test_referenced_template_exists_and_its_parameters_match(source: Path, target: str, passed: dict) -> None:
    template = Path(target)
    assert template.is_file(), f"{rel(source)} references missing {target}"
    declared = {p["name"]: p for p in load_yaml(template).get("parameters") or []}
    unknown = set(passed) - set(declared)
    assert not unknown, f"{rel(source)} passes {unknown} that {template.name} does not declare"
    missing = {n for n, p in declared.items() if "default" not in p} - set(passed)
    assert not missing, f"{rel(source)} does not pass required {missing} to {template.name}"


# --- hygiene --------------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "storage connection string or key": re.compile(
        r"AccountKey=|DefaultEndpointsProtocol=|SharedAccessSignature=", re.I
    ),
    "SAS token": re.compile(r"[?&]sig=[A-Za-z0-9%/+]{20,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "Azure DevOps PAT": re.compile(r"\b[a-z2-7]{52}\b"),
    "password or secret value": re.compile(
        r"(password|secret|token|apikey|api_key)\s*[:=]\s*['\"]?[^\s$'\"(]{8,}", re.I
    ),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_no_secrets_in_yaml(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [what for what, pattern in SECRET_PATTERNS.items() if pattern.search(text)]
    assert not found, f"{rel(path)} looks like it holds a {found}"


def test_secret_patterns_catch_secrets() -> None:
    samples = [
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==",
        "https://a.blob.core.windows.net/c/b?sv=2022&sig=abcdefghijklmnopqrstuvwxyz0123",
        "token: 3x4mpl3t0k3nv4lu3",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig",
    ]
    for sample in samples:
        assert any(p.search(sample) for p in SECRET_PATTERNS.values()), sample


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_every_script_step_is_strict_bash(path: Path) -> None:
    for name, text in scripts_of(path):
        first = next(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
        assert first == "set -euo pipefail", f"{rel(path)}: step {name!r} starts with {first!r}"
    for step in steps_of(path):
        assert "script" not in step, f"{rel(path)}: use bash: (script: runs sh on some agents)"


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_scripts_read_pipeline_values_from_env_not_macros(path: Path) -> None:
    # $(var) macros are pasted into the script text before bash runs: values go through env: instead.
    for name, text in scripts_of(path):
        macros = re.findall(r"\$\((?:[A-Za-z_][\w.]*)\)", text)
        assert not macros, f"{rel(path)}: step {name!r} uses macros {macros}"
