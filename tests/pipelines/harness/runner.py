"""Runs an expanded pipeline the way the Azure Pipelines agent does, against the local stand-ins.

Stages and jobs run in `dependsOn` order (a stage depends on the previous one unless it says otherwise;
jobs of a stage depend on nothing unless they say so), each gated by its `condition:` (default
`succeeded()`). A job gets a fresh $(Agent.BuildDirectory) and a job access token scoped, like with
"Protect access to repositories in YAML pipelines", to the repositories it references: `self` (the
pipeline's repository), its `checkout:` steps and its `uses: repositories:`. Checkouts follow the agent's
layout rules (Microsoft, "Check out multiple repositories in your pipeline"): one checkout goes to `s`, or to
its `path:` (relative to Agent.BuildDirectory), and Build.SourcesDirectory is that directory; with several,
each goes to `s/<repository name>` or its `path:`, and Build.SourcesDirectory is `s`. Steps run with bash;
variables are macro-expanded (`$(name)`), non-secret ones exported as environment variables (upper case,
`.` -> `_`), secrets only through `env:`; `##vso[task.setvariable]` (with `isOutput`) and
`##vso[task.prependpath]` logging commands are honoured. Runtime expressions `$[ ]` in job variables see
`dependencies` and `stageDependencies` outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.pipelines.harness.expressions import evaluate_text, to_bool, to_string
from tests.pipelines.harness.tasks import ServiceConnection, TaskFailed, TaskInputError, run_task
from tests.pipelines.harness.templates import expand_pipeline, variable_list

MACRO = re.compile(r"\$\(([A-Za-z0-9_.\- ]+)\)")
RUNTIME_EXPR = re.compile(r"^\s*\$\[(.*)\]\s*$", re.S)
LOGGING_COMMAND = re.compile(r"##vso\[([\w.]+)([^\]]*)\](.*)")
SECRET_VARIABLES = {"system.accesstoken"}
STEP_TIMEOUT_SECONDS = 1800


class PipelineError(RuntimeError):
    """The pipeline cannot run at all (what Azure reports before any job starts)."""


@dataclass
class Organization:
    """The Azure DevOps organization stand-in: the git server, the project's variable groups and service
    connections, and the pipeline's own repository."""
    git: Any                                     # tests.pipelines.azure_repos_git.AzureReposGit
    self_repository: str
    variable_groups: dict[str, dict[str, str]] = field(default_factory=dict)
    service_connections: dict[str, ServiceConnection] = field(default_factory=dict)
    cache_dir: Path = Path()
    host_path: str = ""                          # PATH of the agent image (before any step prepends)
    extra_env: dict[str, str] = field(default_factory=dict)   # agent-image environment (e.g. DOCKER_HOST)


@dataclass
class Trigger:
    reason: str = "IndividualCI"                 # Build.Reason: IndividualCI, BatchedCI, PullRequest, Manual, Schedule
    source_branch: str = "refs/heads/main"       # Build.SourceBranch of the triggering repository
    repository: str = "self"                     # alias of the repository whose change triggered the run
    target_branch: str = ""                      # System.PullRequest.TargetBranch for PullRequest
    pull_request_id: str = ""


@dataclass
class JobResult:
    stage: str
    name: str
    result: str = "Skipped"                      # Succeeded | Failed | Skipped
    outputs: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)   # (displayName, Succeeded|Failed|Skipped)
    workspace: Path | None = None
    variables: dict[str, str] = field(default_factory=dict)
    error: str = ""
    token_scope: frozenset[str] = frozenset()     # repositories the job access token reached
    published: list[Path] = field(default_factory=list)   # test result files PublishTestResults@2 read

    @property
    def text(self) -> str:
        return "\n".join(self.log)


@dataclass
class RunResult:
    stages: dict[str, str]
    jobs: dict[str, JobResult]

    def job(self, stage: str, name: str) -> JobResult:
        return self.jobs[f"{stage}.{name}"]


class StepFailed(RuntimeError):
    pass


def _env_name(variable: str) -> str:
    return re.sub(r"[. ]", "_", variable).upper()


def _step_name(step: dict[str, Any]) -> str:
    for key in ("displayName", "name"):
        if step.get(key):
            return str(step[key])
    for key in ("bash", "script", "task", "checkout", "publish", "download"):
        if key in step:
            return f"{key}: {str(step[key]).strip().splitlines()[0] if step[key] else ''}"
    return "step"


class JobRun:
    def __init__(self, pipeline: PipelineRun, stage: dict[str, Any], job: dict[str, Any], result: JobResult,
                 variables: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.org = pipeline.org
        self.stage = stage
        self.job = job
        self.result = result
        self.variables = variables
        self.secrets: set[str] = set(SECRET_VARIABLES)
        self.path_prepends: list[str] = []
        self.post_job: list[Callable[[], Any]] = []
        self.published_results: list[Path] = []
        self.status = "Succeeded"
        self.agent_dir = pipeline.work_dir / f"{len(pipeline.results)}-{result.stage}-{result.name}"
        self.build_dir = self.agent_dir / "1"
        self.default_working_directory = self.build_dir / "s"

    # --- variables -----------------------------------------------------------------------------
    def set_variable(self, name: str, value: str, secret: bool = False) -> None:
        existing = next((k for k in self.variables if k.lower() == name.lower()), name)
        self.variables[existing] = value
        if secret:
            self.secrets.add(name.lower())

    def macro(self, text: Any, depth: int = 0) -> str:
        """$(name) replaced by the variable's value; unknown names are left as they are (Azure's behaviour)."""
        text = to_string(text)
        lowered = {k.lower(): v for k, v in self.variables.items()}

        def replace(match: re.Match[str]) -> str:
            value = lowered.get(match.group(1).lower())
            return match.group(0) if value is None else value

        out = MACRO.sub(replace, text)
        return out if out == text or depth > 8 else self.macro(out, depth + 1)

    def resolve(self, path: str) -> Path:
        candidate = Path(self.macro(path))
        return candidate if candidate.is_absolute() else self.default_working_directory / candidate

    def log(self, line: str) -> None:
        self.result.log.append(line)

    def prepend_path(self, directory: str) -> None:
        self.path_prepends.insert(0, directory)

    # --- steps ---------------------------------------------------------------------------------
    def environment(self, step: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": ":".join([*self.path_prepends, self.org.host_path]), "HOME": str(self.agent_dir / "home"),
               "LANG": "C.UTF-8", "TF_BUILD": "True", "AGENT_OS": "Linux", **self.org.extra_env}
        for name, value in self.variables.items():
            if name.lower() not in self.secrets:
                env[_env_name(name)] = self.macro(value)
        env.update(extra or {})
        for name, value in (step.get("env") or {}).items():
            env[str(name)] = self.macro(value)
        return env

    def run_bash(self, script: str, step: dict[str, Any], cwd: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        workdir = cwd or (self.resolve(step["workingDirectory"]) if step.get("workingDirectory")
                          else self.default_working_directory)
        if not workdir.is_dir():
            raise StepFailed(f"working directory {workdir} does not exist")
        script_file = self.agent_dir / "_temp" / f"{uuid.uuid4().hex}.sh"
        script_file.parent.mkdir(parents=True, exist_ok=True)
        script_file.write_text(self.macro(script))
        timeout = min(STEP_TIMEOUT_SECONDS, int(float(step.get("timeoutInMinutes") or 30)) * 60)
        try:
            proc = subprocess.run(["bash", "--noprofile", "--norc", str(script_file)], cwd=workdir,
                                  env=self.environment(step, extra_env), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise StepFailed(f"the step ran longer than {timeout}s") from error
        for line in proc.stdout.splitlines():
            self.log(line)
            self._logging_command(line, step)
        for line in proc.stderr.splitlines():
            self.log(line)
        if proc.returncode != 0:
            raise StepFailed(f"bash exited with code {proc.returncode}")

    def _logging_command(self, line: str, step: dict[str, Any]) -> None:
        match = LOGGING_COMMAND.search(line)
        if not match:
            return
        command, props_text, value = match.group(1).lower(), match.group(2), match.group(3)
        props = dict(p.strip().partition("=")[::2] for p in props_text.split(";") if p.strip())
        props = {k.lower(): v for k, v in props.items()}
        if command == "task.setvariable":
            name = props.get("variable", "")
            secret = props.get("issecret", "false").lower() == "true"
            if props.get("isoutput", "false").lower() == "true":
                if not step.get("name"):
                    raise StepFailed(f"output variable {name} set by a step without `name:`")
                self.result.outputs[f"{step['name']}.{name}"] = value
                self.set_variable(f"{step['name']}.{name}", value, secret)
            else:
                self.set_variable(name, value, secret)
        elif command == "task.prependpath":
            self.prepend_path(value.strip())
        elif command == "task.complete" and props.get("result", "").lower() == "failed":
            self.status = "Failed"

    def publish_artifact(self, step: dict[str, Any]) -> None:
        """`publish:` (PublishPipelineArtifact@1): PATH, relative to System.DefaultWorkingDirectory, becomes
        the run's artifact ARTIFACT; a name is published once per run."""
        source = self.resolve(str(step["publish"]))
        name = self.macro(step.get("artifact") or f"{self.result.stage}.{self.result.name}")
        if not source.exists():
            raise StepFailed(f"publish: {source} does not exist")
        target = self.pipeline.artifacts_dir / name
        if target.exists():
            raise StepFailed(f"publish: artifact {name} was already published in this run")
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir(parents=True)
            shutil.copy2(source, target / source.name)

    def download_artifacts(self, step: dict[str, Any]) -> None:
        """`download: current` (DownloadPipelineArtifact@2): the run's artifact ARTIFACT (all when not
        named) into $(Pipeline.Workspace)/<artifact>."""
        if step["download"] == "none":
            return
        if step["download"] != "current":
            raise StepFailed("download: only artifacts of the current run have a local equivalent")
        wanted = step.get("artifact")
        available = sorted(p.name for p in self.pipeline.artifacts_dir.iterdir()) \
            if self.pipeline.artifacts_dir.is_dir() else []
        names = [self.macro(wanted)] if wanted else available
        for name in names:
            if name not in available:
                raise StepFailed(f"download: artifact {name} not found in this run (published: {available})")
            shutil.copytree(self.pipeline.artifacts_dir / name, self.build_dir / name, dirs_exist_ok=True)

    def step_condition(self, step: dict[str, Any]) -> bool:
        condition = step.get("condition", "succeeded()")

        def status(name: str, args: list[str]) -> bool:
            return {"succeeded": self.status == "Succeeded", "failed": self.status == "Failed",
                    "succeededorfailed": True, "always": True, "canceled": False}[name]

        return to_bool(evaluate_text(self.macro(condition) if "$(" in condition else condition,
                                     {"variables": self.variables}, status))

    # --- checkout ------------------------------------------------------------------------------
    def checkouts(self) -> list[dict[str, Any]]:
        steps = self.job.get("steps") or []
        found = [s for s in steps if "checkout" in s]
        if not found:
            return [{"checkout": "self"}]
        return [s for s in found if s["checkout"] != "none"]

    def layout(self) -> dict[str, Path]:
        """Where each checkout goes, and Build.SourcesDirectory (Microsoft: "Checkout path")."""
        checkouts = self.checkouts()
        paths: dict[str, Path] = {}
        for step in checkouts:
            alias = step["checkout"]
            name = self.pipeline.repository_name(alias)
            if step.get("path"):
                relative = Path(self.macro(step["path"]))
                if relative.is_absolute() or ".." in relative.parts:
                    raise PipelineError(f"checkout {alias}: path {relative} must be relative to Agent.BuildDirectory")
                paths[alias] = self.build_dir / relative
            elif len(checkouts) == 1:
                paths[alias] = self.build_dir / "s"
            else:
                paths[alias] = self.build_dir / "s" / name
        sources = next(iter(paths.values())) if len(checkouts) == 1 else self.build_dir / "s"
        paths["__sources__"] = sources
        return paths

    def checkout(self, step: dict[str, Any], target: Path, token: str) -> None:
        alias = step["checkout"]
        name = self.pipeline.repository_name(alias)
        url = self.org.git.url(name)
        ref, commit = self.pipeline.ref_for(alias)
        target.mkdir(parents=True, exist_ok=True)
        header = f"http.extraheader=AUTHORIZATION: bearer {token}"
        depth = int(step.get("fetchDepth") or 0)

        def git(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["git", "-C", str(target), *args], capture_output=True, text=True,
                                  env={"PATH": self.org.host_path, "HOME": str(self.agent_dir / "home"),
                                       "GIT_TERMINAL_PROMPT": "0"})

        git("init", "-q")
        git("remote", "add", "origin", url)
        # Like the agent: fetch the commit the run is for (by id when known, as the ref may have moved
        # since the run was queued) plus the branches, then check it out detached.
        fetch = ["-c", header, "fetch", "--force", "--no-tags", "--prune", "origin",
                 "+refs/heads/*:refs/remotes/origin/*", f"+{commit or ref}:refs/remotes/origin/__checkout"]
        if depth:
            fetch[3:3] = [f"--depth={depth}"]
        proc = git(*fetch)
        if proc.returncode != 0:
            self.log(proc.stderr)
            raise StepFailed(f"checkout of {alias} ({url}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        proc = git("checkout", "-q", "--detach", commit or "refs/remotes/origin/__checkout")
        if proc.returncode != 0:
            raise StepFailed(f"checkout of {alias} at {commit or ref} failed: {proc.stderr.strip()}")
        if str(step.get("persistCredentials", "false")).lower() == "true":
            git("config", "http.extraheader", f"AUTHORIZATION: bearer {token}")
        self.log(f"checked out {name} at {git('rev-parse', 'HEAD').stdout.strip()} into {target}")

    # --- the job -------------------------------------------------------------------------------
    def referenced_repositories(self) -> set[str]:
        aliases = {"self"} | {s["checkout"] for s in self.checkouts()}
        uses = (self.job.get("uses") or {}).get("repositories") or []
        for alias in uses:
            if alias not in self.pipeline.resources and alias != "self":
                raise PipelineError(f"job {self.result.name}: uses repository '{alias}', which is not declared "
                                    "in resources.repositories")
        aliases |= set(uses)
        return {self.pipeline.repository_name(a) for a in aliases}

    def run(self, until: str | None = None) -> None:
        shutil.rmtree(self.agent_dir, ignore_errors=True)
        (self.agent_dir / "home").mkdir(parents=True)
        for sub in ("a", "b", "TestResults"):
            (self.build_dir / sub).mkdir(parents=True)
        token = f"job-{uuid.uuid4().hex}"
        self.result.token_scope = frozenset(self.referenced_repositories())
        self.org.git.grant(token, set(self.result.token_scope))
        layout = self.layout()
        sources = layout.pop("__sources__")
        self.default_working_directory = sources
        trigger = self.pipeline.trigger
        self_name = self.org.self_repository
        predefined = {
            "Agent.BuildDirectory": str(self.build_dir), "Pipeline.Workspace": str(self.build_dir),
            "Agent.TempDirectory": str(self.agent_dir / "_temp"), "Agent.ToolsDirectory": str(self.agent_dir / "_tool"),
            "Agent.OS": "Linux", "Agent.JobStatus": "Succeeded", "Build.SourcesDirectory": str(sources),
            "System.DefaultWorkingDirectory": str(sources), "Build.Repository.LocalPath": str(sources),
            "Build.ArtifactStagingDirectory": str(self.build_dir / "a"),
            "Build.StagingDirectory": str(self.build_dir / "a"), "Build.BinariesDirectory": str(self.build_dir / "b"),
            "Common.TestResultsDirectory": str(self.build_dir / "TestResults"),
            "Build.Reason": trigger.reason, "Build.SourceBranch": self.pipeline.self_ref,
            "Build.SourceBranchName": self.pipeline.self_ref.rsplit("/", 1)[-1],
            "Build.SourceVersion": self.pipeline.self_commit, "Build.BuildId": self.pipeline.build_id,
            "Build.BuildNumber": self.pipeline.build_number, "Build.Repository.Name": self_name,
            "Build.Repository.Uri": self.org.git.url(self_name), "Build.Repository.Provider": "TfsGit",
            "System.CollectionUri": self.org.git.collection_uri,
            "System.TeamFoundationCollectionUri": self.org.git.collection_uri,
            "System.TeamProject": self.org.git.project, "System.AccessToken": token,
            "System.JobName": self.result.name, "System.StageName": self.result.stage, "System.Debug": "false",
        }
        if trigger.reason == "PullRequest":
            predefined.update({"System.PullRequest.TargetBranch": trigger.target_branch,
                               "System.PullRequest.PullRequestId": trigger.pull_request_id,
                               "System.PullRequest.SourceRepositoryURI":
                                   self.org.git.url(self.pipeline.repository_name(trigger.repository))})
        for alias, resource in self.pipeline.resources.items():
            ref, _commit = self.pipeline.ref_for(alias)
            name = self.pipeline.repository_name(alias)
            predefined.update({f"resources.repositories.{alias}.name": resource.get("name", ""),
                               f"resources.repositories.{alias}.ref": ref,
                               f"resources.repositories.{alias}.url": self.org.git.url(name),
                               f"resources.repositories.{alias}.type": resource.get("type", "git")})
        for name, value in predefined.items():
            self.variables.setdefault(name, value)
        self.variables.update({k: v for k, v in predefined.items() if k.startswith(("Agent.", "Build.", "System.",
                                                                                     "Pipeline.", "Common."))})
        steps = list(self.job.get("steps") or [])
        if not any("checkout" in step for step in steps):
            steps.insert(0, {"checkout": "self"})     # the agent's implicit checkout of self
        try:
            for step in steps:
                display = _step_name(step)
                if "checkout" in step:
                    if step["checkout"] == "none":
                        continue
                    try:
                        self.checkout(step, layout[step["checkout"]], token)
                    except StepFailed as error:
                        self.log(f"##[error]{display}: {error}")
                        self.result.steps.append((display, "Failed"))
                        self.result.error = self.result.error or f"{display}: {error}"
                        self.status = "Failed"
                        break
                    self.result.steps.append((display, "Succeeded"))
                    continue
                if not self.step_condition(step):
                    self.result.steps.append((display, "Skipped"))
                    continue
                try:
                    if "bash" in step or "script" in step:
                        self.run_bash(step.get("bash", step.get("script")), step)
                    elif "publish" in step:
                        self.publish_artifact(step)
                    elif "download" in step:
                        self.download_artifacts(step)
                    elif "task" in step:
                        run_task(self, step, step["task"])
                    else:
                        raise StepFailed(f"unsupported step {sorted(step)}")
                    self.result.steps.append((display, "Succeeded"))
                except (StepFailed, TaskFailed, TaskInputError) as error:
                    self.log(f"##[error]{display}: {error}")
                    self.result.steps.append((display, "Failed"))
                    self.result.error = self.result.error or f"{display}: {error}"
                    self.status = "Failed"
                    if str(step.get("continueOnError", "false")).lower() == "true":
                        self.status = "Succeeded"    # SucceededWithIssues: later steps still run
                if until is not None and display == until:
                    break
        finally:
            self.org.git.revoke(token)
        if self.status == "Succeeded":
            for action in self.post_job:
                action()
        self.result.result = self.status
        self.result.workspace = self.build_dir
        discard_virtualenvs(self.agent_dir)
        self.result.variables = dict(self.variables)
        self.result.published = list(self.published_results)


class PipelineRun:
    def __init__(self, path: Path, org: Organization, trigger: Trigger, parameters: dict[str, Any] | None,
                 work_dir: Path, self_commit: str, resource_commits: dict[str, str] | None = None) -> None:
        self.path = path
        self.org = org
        self.trigger = trigger
        self.pipeline = expand_pipeline(path, parameters)
        self.work_dir = work_dir
        self.self_commit = self_commit
        self.self_ref = trigger.source_branch if trigger.repository == "self" else "refs/heads/main"
        self.resource_commits = resource_commits or {}
        self.resources: dict[str, dict[str, Any]] = {
            r["repository"]: r for r in ((self.pipeline.get("resources") or {}).get("repositories") or [])}
        self.results: dict[str, JobResult] = {}
        self.artifacts_dir = work_dir / "artifacts"
        shutil.rmtree(self.artifacts_dir, ignore_errors=True)
        self.artifacts_dir.mkdir(parents=True)
        self.build_id = "4711"
        self.build_number = "20260101.1"

    def repository_name(self, alias: str) -> str:
        if alias == "self":
            return self.org.self_repository
        resource = self.resources.get(alias)
        if resource is None:
            raise PipelineError(f"repository '{alias}' is not declared in resources.repositories")
        return str(resource["name"]).rsplit("/", 1)[-1]

    def ref_for(self, alias: str) -> tuple[str, str]:
        """(ref, commit) a checkout of ALIAS gets: the triggering ref for the triggering repository, the
        resource's `ref:` (default refs/heads/main) otherwise."""
        if alias == self.trigger.repository or (alias == "self" and self.trigger.repository == "self"):
            commit = self.self_commit if alias == "self" else self.resource_commits.get(alias, "")
            return self.trigger.source_branch, commit
        if alias == "self":
            return self.self_ref, self.self_commit
        return str(self.resources[alias].get("ref", "refs/heads/main")), self.resource_commits.get(alias, "")

    def run_variables(self) -> dict[str, str]:
        """The predefined variables known before any job starts (stage and job conditions read them)."""
        trigger = self.trigger
        return {"Build.Reason": trigger.reason, "Build.SourceBranch": self.self_ref,
                "Build.SourceBranchName": self.self_ref.rsplit("/", 1)[-1], "Build.SourceVersion": self.self_commit,
                "Build.BuildId": self.build_id, "Build.BuildNumber": self.build_number,
                "Build.Repository.Name": self.org.self_repository, "System.TeamProject": self.org.git.project,
                "System.CollectionUri": self.org.git.collection_uri,
                **({"System.PullRequest.TargetBranch": trigger.target_branch,
                    "System.PullRequest.PullRequestId": trigger.pull_request_id}
                   if trigger.reason == "PullRequest" else {})}

    def pipeline_variables(self) -> dict[str, str]:
        variables: dict[str, str] = self.run_variables()
        for entry in self.pipeline.get("variables") or []:
            if "group" in entry:
                group = self.org.variable_groups.get(entry["group"])
                if group is None:
                    raise PipelineError(f"variable group '{entry['group']}' could not be found or is not authorized")
                variables.update(group)
            elif "name" in entry:
                variables[entry["name"]] = to_string(entry.get("value", ""))
        return variables

    def stages(self) -> list[dict[str, Any]]:
        if "stages" in self.pipeline:
            return self.pipeline["stages"]
        return [{"stage": "__default", "jobs": self.pipeline.get("jobs") or [{"job": "__default",
                                                                              "steps": self.pipeline["steps"]}]}]

    def run(self, jobs: set[str] | None = None, until: dict[str, str] | None = None,
            given: dict[str, JobResult] | None = None) -> RunResult:
        """Runs every stage and job (or only JOBS, as "Stage.Job"; the others count as skipped); UNTIL maps
        "Stage.Job" to the displayName of the last step to run in that job. GIVEN holds results of jobs of
        an earlier run ("Stage.Job" -> result with outputs), used instead of running them, like Azure's
        "rerun failed jobs" keeps the outputs of the jobs that succeeded."""
        given = given or {}
        stage_results: dict[str, str] = {}
        stage_outputs: dict[str, dict[str, str]] = {}
        base_variables = self.pipeline_variables()
        previous: str | None = None
        for stage in self.stages():
            name = stage["stage"]
            depends = stage.get("dependsOn", [previous] if previous else [])
            depends = [depends] if isinstance(depends, str) else list(depends or [])
            previous = name
            deps_context = {d: {"result": stage_results.get(d, "Skipped"), "outputs": stage_outputs.get(d, {})}
                            for d in depends}
            stage_variables = {**base_variables, **{e["name"]: to_string(e.get("value", ""))
                                                    for e in variable_list(stage.get("variables")) if "name" in e}}
            runs = self._condition(stage.get("condition"), stage_variables, deps_context, {})
            if not runs:
                stage_results[name] = "Skipped"
                for job in stage.get("jobs") or []:
                    self.results[f"{name}.{job['job']}"] = JobResult(name, job["job"])
                continue
            job_results: dict[str, JobResult] = {}
            previous_stage_jobs = {s: {j.name: {"result": j.result, "outputs": j.outputs}
                                       for j in self.results.values() if j.stage == s}
                                   for s in stage_results}
            for job in self._job_order(stage.get("jobs") or []):
                job_name = job["job"]
                result = given.get(f"{name}.{job_name}") or JobResult(name, job_name)
                self.results[f"{name}.{job_name}"] = result
                job_results[job_name] = result
                job_depends = job.get("dependsOn", [])
                job_depends = [job_depends] if isinstance(job_depends, str) else list(job_depends or [])
                job_deps = {d: {"result": job_results[d].result, "outputs": job_results[d].outputs}
                            for d in job_depends}
                variables = dict(stage_variables)
                context = {"variables": variables, "dependencies": job_deps, "stageDependencies": previous_stage_jobs}
                for entry in variable_list(job.get("variables")):
                    if "name" not in entry:
                        continue
                    value = to_string(entry.get("value", ""))
                    runtime = RUNTIME_EXPR.match(value)
                    variables[entry["name"]] = to_string(evaluate_text(runtime.group(1), context)) if runtime else value
                if f"{name}.{job_name}" in given or (jobs is not None and f"{name}.{job_name}" not in jobs):
                    continue
                if not self._condition(job.get("condition"), variables, job_deps, previous_stage_jobs):
                    continue
                JobRun(self, stage, job, result, variables).run((until or {}).get(f"{name}.{job_name}"))
            ran = [r.result for r in job_results.values()]
            stage_results[name] = ("Failed" if "Failed" in ran else "Succeeded" if "Succeeded" in ran else "Skipped")
            stage_outputs[name] = {f"{j.name}.{k}": v for j in job_results.values() for k, v in j.outputs.items()}
        return RunResult(stage_results, self.results)

    def _condition(self, condition: Any, variables: dict[str, str], dependencies: dict[str, Any],
                   stage_dependencies: dict[str, Any]) -> bool:
        def status(name: str, args: list[str]) -> bool:
            chosen = [dependencies[a] for a in args if a in dependencies] if args else list(dependencies.values())
            results = [d["result"] for d in chosen]
            return {"succeeded": all(r == "Succeeded" for r in results),
                    "failed": any(r == "Failed" for r in results),
                    "succeededorfailed": all(r in ("Succeeded", "Failed") for r in results),
                    "always": True, "canceled": False}[name]

        text = to_string(condition) if condition else "succeeded()"
        return to_bool(evaluate_text(text, {"variables": variables, "dependencies": dependencies,
                                            "stageDependencies": stage_dependencies}, status))

    @staticmethod
    def _job_order(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        pending = list(jobs)
        while pending:
            for job in pending:
                depends = job.get("dependsOn", [])
                depends = [depends] if isinstance(depends, str) else list(depends or [])
                if all(any(d == j["job"] for j in done) for d in depends):
                    done.append(job)
                    pending.remove(job)
                    break
            else:
                raise PipelineError(f"jobs {[j['job'] for j in pending]} depend on unknown or circular jobs")
        return done


def discard_virtualenvs(agent_dir: Path) -> None:
    """Removes the virtualenvs a job made once it has ended. A Microsoft-hosted agent discards the whole VM
    after the job; the harness keeps sources, artifacts and logs for the tests to read, but not the
    virtualenvs (about 1 GB each with onnxruntime and lightgbm), so a run of four jobs does not fill the disk."""
    for root, dirs, files in os.walk(agent_dir):
        if "pyvenv.cfg" in files:
            shutil.rmtree(root, ignore_errors=True)
            dirs.clear()


def host_path_without(virtualenv: str | None) -> str:
    """PATH of the agent image: the host's PATH without the test run's virtualenv (a job installs its own)."""
    import sys

    skip = {p for p in (virtualenv, sys.prefix if sys.prefix != sys.base_prefix else None) if p}
    entries = os.environ.get("PATH", "").split(":")
    return ":".join(e for e in entries if e and not any(e.startswith(p) for p in skip))
