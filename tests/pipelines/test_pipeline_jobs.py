"""Every job of every pipeline, run through the harness (tests/pipelines/harness) the way a hosted agent
runs it, in both repository layouts: the environments repository on its own ("separate", what
docs/bootstrap-aks.md creates) and inside the application repository ("single"). The fast tests run each
job up to its Python setup (checkout layout, token scope, paths, cache keys); the `pipeline_job` tests run
whole jobs against the local stand-ins. Each of issue 13's findings has a test here that fails on the files
before the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pipelines.azure_schema import REPO_ROOT, load_yaml
from tests.pipelines.harness.org import APP_REPOSITORY, LAYOUTS, Project, environments_repository_name, project
from tests.pipelines.harness.runner import JobResult, Trigger
from tests.pipelines.harness.tasks import ServiceConnection

# The pipelines the harness runs; a new pipeline is one line here.
PIPELINES = [
    "azure-pipelines.yml",
    "pipelines/environments-pr.yml",
    "pipelines/model-watch.yml",
]
PIPELINES += [p for p in ("pipelines/promotion.yml",) if (REPO_ROOT / p).is_file()]

MAIN = Trigger(reason="IndividualCI", source_branch="refs/heads/main")
ENV_PR = Trigger(reason="PullRequest", source_branch="refs/pull/1/merge", repository="environments",
                 target_branch="refs/heads/main", pull_request_id="1")
SCHEDULE = Trigger(reason="Schedule", source_branch="refs/heads/main")
IMAGE_REF = "registry.invalid/ai-app@sha256:" + "a" * 64


def pipeline_jobs(pipeline: str) -> list[str]:
    document = load_yaml(REPO_ROOT / pipeline)
    stages = document.get("stages") or [{"stage": "__default", "jobs": document.get("jobs", [])}]
    return [f"{s['stage']}.{j['job']}" for s in stages for j in s.get("jobs") or []]


def trigger_for(pipeline: str) -> Trigger:
    return {"pipelines/environments-pr.yml": ENV_PR, "pipelines/model-watch.yml": SCHEDULE}.get(pipeline, MAIN)


# What the other jobs produced in an earlier run, for running one job on its own.
OUTPUTS: dict[str, dict[str, str]] = {
    "Build.BuildImage": {"pushImage.imageRef": IMAGE_REF, "pushImage.imageDigest": IMAGE_REF.split("@")[1],
                         "pushImage.modelUri": "https://myaccount.blob.core.windows.net/models/iris-logreg/1/model.onnx"},
    "WatchModel.Compare": {"watch.newModelUri": "https://myaccount.blob.core.windows.net/models/iris-logreg/2/model.onnx"},
}


def given_for(pipeline: str, job: str) -> dict[str, JobResult]:
    """Every other job of the pipeline as having succeeded, with the outputs above."""
    return {other: JobResult(*other.split("."), "Succeeded", dict(OUTPUTS.get(other, {})))
            for other in pipeline_jobs(pipeline) if other != job}


PARAMETERS = {"UpdateDevModel.EnvbotUpdateModel": {"modelOnly": "true"}}

ALL_JOBS = [(p, j) for p in PIPELINES for j in pipeline_jobs(p)]


@pytest.fixture(scope="module", params=LAYOUTS)
def layout_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with project(tmp_path_factory.mktemp(request.param), request.param,
                 variable_groups={"ai-app-delivery": {}},
                 service_connections={"ai-app-azure": ServiceConnection("azurerm"),
                                      "ai-app-acr": ServiceConnection("dockerregistry")}) as proj:
        values = (REPO_ROOT / "environments" / "dev" / "values.yaml").read_text()
        proj.pull_request(proj.environments_repository,
                          {"environments/dev/values.yaml": values + "# reviewed in a pull request\n"})
        yield proj


def setup_step(job: str) -> str:
    return "Restore the pip cache"


@pytest.mark.parametrize(("pipeline", "job"), ALL_JOBS)
def test_every_job_finds_its_project_where_its_checkouts_put_it(layout_project: Project, pipeline: str,
                                                                job: str) -> None:
    """Finding 1: a single `checkout: self` with `path: s/app` makes Build.SourcesDirectory the repository
    itself, so `app/pyproject.toml` (the Cache@2 key) and `cd app` point at nothing."""
    run = layout_project.run(pipeline, trigger_for(pipeline), PARAMETERS.get(job), jobs={job},
                             until={job: setup_step(job)}, given=given_for(pipeline, job))
    result = run.jobs[job]
    assert result.result == "Succeeded", f"{pipeline} {job}: {result.error}\n{result.text}"
    assert ("Restore the pip cache", "Succeeded") in result.steps


def envbot_jobs() -> list[tuple[str, str]]:
    """Jobs whose steps hand envbot the environments repository's name (it clones and pushes it)."""
    from tests.pipelines.harness.templates import expand_pipeline

    found = []
    for pipeline in PIPELINES:
        expanded = expand_pipeline(REPO_ROOT / pipeline)
        for stage in expanded.get("stages") or []:
            for job in stage.get("jobs") or []:
                checkouts = {s.get("checkout") for s in job.get("steps") or []}
                if "environments" in checkouts:
                    continue
                if any("ENVIRONMENTS_REPOSITORY" in (s.get("env") or {}) and "envbot" in str(s.get("inputs") or s)
                       for s in job.get("steps") or []):
                    found.append((pipeline, f"{stage['stage']}.{job['job']}"))
    return found


def test_envbot_jobs_are_found() -> None:
    assert ("azure-pipelines.yml", "UpdateDev.EnvbotUpdate") in envbot_jobs()
    assert ("pipelines/model-watch.yml", "WatchModel.Update") in envbot_jobs()


@pytest.mark.parametrize(("pipeline", "job"), envbot_jobs())
def test_the_job_token_reaches_the_repository_envbot_clones(layout_project: Project, pipeline: str,
                                                            job: str) -> None:
    """Finding 2: with "Protect access to repositories in YAML pipelines" the job token reaches only the
    repositories the job references; envbot's clone of an undeclared, unreferenced repository fails
    with TF401019."""
    run = layout_project.run(pipeline, trigger_for(pipeline), PARAMETERS.get(job), jobs={job},
                             until={job: setup_step(job)}, given=given_for(pipeline, job))
    result = run.jobs[job]
    assert result.result == "Succeeded", result.error
    stage, name = job.split(".")
    from tests.pipelines.harness.templates import expand_pipeline

    expanded = expand_pipeline(REPO_ROOT / pipeline, PARAMETERS.get(job))
    jobs = [j for s in expanded["stages"] if s["stage"] == stage for j in s["jobs"] if j["job"] == name]
    mapped = next(s["env"]["ENVIRONMENTS_REPOSITORY"] for s in jobs[0]["steps"]
                  if "ENVIRONMENTS_REPOSITORY" in (s.get("env") or {}))
    repository = re.sub(r"\$\(([^)]+)\)", lambda m: result.variables.get(m.group(1), m.group(0)), mapped)
    assert repository == layout_project.environments_repository
    assert repository in result.token_scope, f"{job}: the token reaches {sorted(result.token_scope)} only"


def test_one_name_for_the_environments_repository() -> None:
    """Finding 3: the environments repository has one name: the `environments` repository resource of
    azure-pipelines.yml. Every pipeline, doc and manifest that names it agrees."""
    name = environments_repository_name(REPO_ROOT / "azure-pipelines.yml")
    for pipeline in PIPELINES:
        resources = (load_yaml(REPO_ROOT / pipeline).get("resources") or {}).get("repositories") or []
        if any(r.get("repository") == "environments" for r in resources):
            assert environments_repository_name(REPO_ROOT / pipeline) == name, pipeline
    texts = {path: path.read_text() for path in [REPO_ROOT / "docs" / "pipelines.md",
                                                  REPO_ROOT / "docs" / "bootstrap-aks.md",
                                                  *sorted((REPO_ROOT / "environments").rglob("*.yaml"))]}
    for path, text in texts.items():
        for found in re.findall(r"_git/([A-Za-z0-9._-]+)", text):
            assert found in (name, APP_REPOSITORY, "${ENV_REPO}"), f"{path}: _git/{found} (the name is {name})"
        for found in re.findall(r"az repos create --name (\S+)", text):
            assert found.strip('"') in (name, APP_REPOSITORY, "$ENV_REPO", "$APP_REPO"), f"{path}: {found}"
    bootstrap = texts[REPO_ROOT / "docs" / "bootstrap-aks.md"]
    assert f"ENV_REPO={name}" in bootstrap
    assert f"`{name}`" in texts[REPO_ROOT / "docs" / "pipelines.md"]
    common = load_yaml(REPO_ROOT / "pipelines" / "variables" / "common.yml")["variables"]
    assert "environmentsRepository" not in common, "a second definition of the name (the resource is the one)"


def ci_triggers(pipeline: Path, branch: str, changed: list[str]) -> bool:
    """Whether a push of CHANGED files to BRANCH starts the pipeline's CI trigger (Microsoft, "CI triggers":
    branch include/exclude; with path filters, at least one changed file must be included and not
    excluded; a path filter is a prefix, with `*` wildcards)."""
    trigger = load_yaml(pipeline).get("trigger")
    if trigger in (None, "none"):
        return trigger is None
    branches = trigger.get("branches") or {}
    name = branch.removeprefix("refs/heads/")
    if branches.get("include") and not any(re.fullmatch(b.replace("*", ".*"), name) for b in branches["include"]):
        return False
    if any(re.fullmatch(b.replace("*", ".*"), name) for b in branches.get("exclude") or []):
        return False
    paths = trigger.get("paths") or {}

    def matches(path: str, pattern: str) -> bool:
        pattern = pattern.rstrip("/")
        if "*" in pattern:
            return re.match(re.escape(pattern).replace(r"\*", ".*"), path) is not None
        return path == pattern or path.startswith(pattern + "/")

    include = paths.get("include") or [""]
    return any((not inc or matches(f, inc)) and not any(matches(f, e) for e in paths.get("exclude") or [])
               for f in changed for inc in include)


def test_envbot_pushes_do_not_start_ci_in_the_single_repository_layout() -> None:
    """Finding 5: in the single-repository layout envbot pushes dev's pins into environments/ with the job
    token, and Azure Repos starts CI for such pushes: a build loop without a path exclusion."""
    from bot.policy import DEFAULT_APP, load_policy

    policy = load_policy(REPO_ROOT)
    pushed = [policy.repo_path(policy.app(DEFAULT_APP), "dev")]
    assert pushed == ["environments/dev/values.yaml"]
    main = REPO_ROOT / "azure-pipelines.yml"
    assert not ci_triggers(main, "refs/heads/main", pushed)
    assert ci_triggers(main, "refs/heads/main", ["app/server.py", *pushed])
    assert not ci_triggers(main, "refs/heads/main", ["docs/pipelines.md"])
    assert not ci_triggers(main, "refs/heads/feature", ["app/server.py"])


def test_the_base_image_is_pinned_by_digest() -> None:
    """Finding 7a: a tag moves with every upstream rebuild; the image built from the same commit must not."""
    base = load_yaml(REPO_ROOT / "pipelines" / "variables" / "common.yml")["variables"]["baseImage"]
    assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base), base


def scheduled_runs_per_week(pipeline: Path) -> int:
    from datetime import datetime, timedelta

    from croniter import croniter

    start = datetime(2026, 1, 5)     # a Monday
    runs = 0
    for schedule in load_yaml(pipeline).get("schedules") or []:
        times = croniter(schedule["cron"], start - timedelta(seconds=1))
        while times.get_next(datetime) < start + timedelta(days=7):
            runs += 1
    return runs


def test_the_model_watch_does_not_burn_a_job_every_half_hour() -> None:
    """Finding 7b: when nothing changed the watch costs one short job an hour in working hours (15 a
    weekday, none at the weekend: 75 a week instead of 336), and that job installs only what the watch
    imports; the job with the whole project runs only when a newer model exists."""
    from tests.pipelines.harness.templates import expand_pipeline

    watch = REPO_ROOT / "pipelines" / "model-watch.yml"
    assert scheduled_runs_per_week(watch) <= 75
    compare = expand_pipeline(watch)["stages"][0]["jobs"][0]
    assert compare["job"] == "Compare"
    names = [s.get("displayName", "") for s in compare["steps"]]
    assert "Install the project into .venv" not in names and "Install what the watch imports" in names
    update = expand_pipeline(watch)["stages"][0]["jobs"][1]
    assert "ne(dependencies.Compare.outputs['watch.newModelUri'], '')" in update["condition"]


def test_the_watch_requirements_are_the_projects_own() -> None:
    """One source for each dependency's version range: pyproject.toml."""
    import tomllib

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.strip() for line in (REPO_ROOT / "pipelines" / "scripts" / "model-watch-requirements.txt")
             .read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(line in declared for line in lines), set(lines) - set(declared)


def test_docs_name_what_the_files_define() -> None:
    """docs/pipelines.md agrees with the files: pipeline files, variable names of common.yml and the group,
    service connections, templates and scripts it mentions exist."""
    doc = (REPO_ROOT / "docs" / "pipelines.md").read_text()
    common = load_yaml(REPO_ROOT / "pipelines" / "variables" / "common.yml")["variables"]
    for name in ("azureServiceConnection", "acrServiceConnection"):
        assert f"`{common[name]}`" in doc, name
    for path in set(re.findall(r"`((?:pipelines|app|devenv|bot|tests)/[\w./-]+\.(?:yml|py|txt))`", doc)):
        assert (REPO_ROOT / path).is_file(), f"docs/pipelines.md names {path}, which does not exist"
    group = {entry["group"] for p in PIPELINES for entry in load_yaml(REPO_ROOT / p).get("variables") or []
             if isinstance(entry, dict) and "group" in entry}
    assert group == {"ai-app-delivery"} and "`ai-app-delivery`" in doc
    overrides = re.search(r"per-organization overrides of (.*?);", doc).group(1)
    for name in re.findall(r"`(\w+)`", overrides):
        assert name in common, f"docs/pipelines.md: the group overrides {name}, which common.yml does not define"
    assert all(f"`{p}`" in doc for p in PIPELINES)
