"""Local equivalents of the Azure Pipelines tasks the pipelines use. Each checks the step's inputs against
the task's documented inputs (Microsoft's task reference: names, aliases, allowed values, required-when
rules; an input the task does not define fails the step) and then does locally what the task does on a
hosted agent, against the local stand-ins (the service connections of `Organization` name them).
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.pipelines.harness.runner import JobRun


class TaskInputError(ValueError):
    pass


@dataclass(frozen=True)
class Input:
    name: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    default: str | None = None
    allowed: tuple[str, ...] = ()
    # Required when another input has one of these values: (input, (values...)).
    required_when: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    inputs: tuple[Input, ...]
    reference: str   # where the inputs are documented

    def resolve(self, given: dict[str, Any]) -> dict[str, str]:
        """The inputs by canonical name, defaults filled in; errors name the task and the input."""
        by_name = {}
        for spec in self.inputs:
            for key in (spec.name, *spec.aliases):
                by_name[key.lower()] = spec
        values: dict[str, str] = {}
        for key, value in (given or {}).items():
            spec = by_name.get(str(key).lower())
            if spec is None:
                raise TaskInputError(f"{self.name}: unknown input '{key}' (documented inputs: "
                                     f"{', '.join(s.name for s in self.inputs)}; {self.reference})")
            values[spec.name] = "" if value is None else str(value)
        for spec in self.inputs:
            if spec.name not in values and spec.default is not None:
                values[spec.name] = spec.default
        for spec in self.inputs:
            value = values.get(spec.name, "")
            needed = spec.required
            if spec.required_when:
                other, wanted = spec.required_when
                needed = values.get(other, "").lower() in wanted
            if needed and not value.strip():
                raise TaskInputError(f"{self.name}: input '{spec.name}' is required" +
                                     (f" when {spec.required_when[0]} is {spec.required_when[1][0]}"
                                      if spec.required_when else ""))
            if value and spec.allowed and value.lower() not in [a.lower() for a in spec.allowed]:
                raise TaskInputError(f"{self.name}: input '{spec.name}' is {value!r}, allowed: "
                                     f"{', '.join(spec.allowed)}")
        return values


_REF = "https://learn.microsoft.com/azure/devops/pipelines/tasks/reference/"
BOOL = ("true", "false")

TASKS: dict[str, TaskSpec] = {spec.name.lower(): spec for spec in (
    TaskSpec("AzureCLI@2", (
        Input("azureSubscription", ("connectedServiceNameARM",), required=True),
        Input("scriptType", required=True, allowed=("ps", "pscore", "batch", "bash")),
        Input("scriptLocation", required=True, default="scriptPath", allowed=("inlineScript", "scriptPath")),
        Input("scriptPath", required_when=("scriptLocation", ("scriptpath",))),
        Input("inlineScript", required_when=("scriptLocation", ("inlinescript",))),
        Input("arguments", ("scriptArguments",)),
        Input("powerShellErrorActionPreference", default="stop", allowed=("stop", "continue", "silentlyContinue")),
        Input("addSpnToEnvironment", default="false", allowed=BOOL),
        Input("useGlobalConfig", default="false", allowed=BOOL),
        Input("workingDirectory", ("cwd",)),
        Input("failOnStandardError", default="false", allowed=BOOL),
        Input("powerShellIgnoreLASTEXITCODE", default="false", allowed=BOOL),
        Input("visibleAzLogin", default="true", allowed=BOOL),
        Input("keepAzSessionActive", default="false", allowed=BOOL),
    ), _REF + "azure-cli-v2"),
    TaskSpec("Docker@2", (
        Input("containerRegistry"),
        Input("repository"),
        Input("command", required=True, default="buildAndPush",
              allowed=("buildAndPush", "build", "push", "login", "logout", "start", "stop")),
        Input("Dockerfile", default="**/Dockerfile"),
        Input("buildContext", default="**"),
        Input("tags", default="$(Build.BuildId)"),
        Input("arguments"),
        Input("addPipelineData", default="true", allowed=BOOL),
        Input("addBaseImageData", default="true", allowed=BOOL),
        Input("container"),
    ), _REF + "docker-v2"),
    TaskSpec("UsePythonVersion@0", (
        Input("versionSpec", default="3.x"),
        Input("disableDownloadFromRegistry", default="false", allowed=BOOL),
        Input("allowUnstable", default="false", allowed=BOOL),
        Input("addToPath", default="true", allowed=BOOL),
        Input("architecture", default="x64", allowed=("x86", "x64")),
        Input("githubToken"),
    ), _REF + "use-python-version-v0"),
    TaskSpec("Cache@2", (
        Input("key", required=True),
        Input("path", required=True),
        Input("restoreKeys"),
        Input("cacheHitVar"),
    ), _REF + "cache-v2"),
    TaskSpec("HelmInstaller@1", (
        Input("helmVersionToInstall", default="latest"),
    ), _REF + "helm-installer-v1"),
    TaskSpec("PublishTestResults@2", (
        Input("testResultsFormat", ("testRunner",), required=True, default="JUnit",
              allowed=("JUnit", "NUnit", "VSTest", "XUnit", "CTest")),
        Input("testResultsFiles", required=True, default="**/TEST-*.xml"),
        Input("searchFolder", default="$(System.DefaultWorkingDirectory)"),
        Input("mergeTestResults", default="false", allowed=BOOL),
        Input("failTaskOnFailedTests", default="false", allowed=BOOL),
        Input("failTaskOnFailureToPublishResults", default="false", allowed=BOOL),
        Input("failTaskOnMissingResultsFile", default="false", allowed=BOOL),
        Input("testRunTitle"),
        Input("buildPlatform", ("platform",)),
        Input("buildConfiguration", ("configuration",)),
        Input("publishRunAttachments", default="true", allowed=BOOL),
    ), _REF + "publish-test-results-v2"),
)}


@dataclass
class ServiceConnection:
    """A service connection of the organization stand-in: `azurerm` ones hand AzureCLI@2 scripts the local
    credentials (e.g. Azurite's connection string), `dockerregistry` ones name the local registry."""
    kind: str                                  # "azurerm" | "dockerregistry"
    env: dict[str, str] = field(default_factory=dict)
    registry: str = ""


class TaskFailed(RuntimeError):
    pass


def run_task(job: JobRun, step: dict[str, Any], name: str) -> None:
    spec = TASKS.get(name.lower())
    if spec is None:
        raise TaskFailed(f"task {name} has no local equivalent in the harness")
    inputs = {k: job.macro(v) for k, v in spec.resolve(step.get("inputs") or {}).items()}
    {
        "azurecli@2": _azure_cli, "docker@2": _docker, "usepythonversion@0": _use_python,
        "cache@2": _cache, "helminstaller@1": _helm_installer, "publishtestresults@2": _publish_test_results,
    }[name.lower()](job, step, inputs)


def _connection(job: JobRun, name: str, kind: str, task: str) -> ServiceConnection:
    connection = job.org.service_connections.get(name)
    if connection is None:
        raise TaskFailed(f"{task}: the pipeline is not authorized to use service connection '{name}' "
                         "(no such connection in the organization)")
    if connection.kind != kind:
        raise TaskFailed(f"{task}: service connection '{name}' is of type {connection.kind}, not {kind}")
    return connection


def _azure_cli(job: JobRun, step: dict[str, Any], inputs: dict[str, str]) -> None:
    connection = _connection(job, inputs["azureSubscription"], "azurerm", "AzureCLI@2")
    if inputs["scriptType"] != "bash":
        raise TaskFailed(f"AzureCLI@2: scriptType {inputs['scriptType']} does not run on a Linux agent")
    if inputs["scriptLocation"].lower() == "inlinescript":
        script = inputs["inlineScript"]
    else:
        script_path = job.resolve(inputs["scriptPath"])
        if not script_path.is_file():
            raise TaskFailed(f"AzureCLI@2: scriptPath {script_path} not found")
        script = f'. "{script_path}" {inputs.get("arguments", "")}'
    cwd = job.resolve(inputs["workingDirectory"]) if inputs.get("workingDirectory") else None
    job.run_bash(script, step, cwd=cwd, extra_env=connection.env)


def _docker(job: JobRun, step: dict[str, Any], inputs: dict[str, str]) -> None:
    command = inputs["command"].lower()
    if command not in ("login", "logout"):
        raise TaskFailed(f"Docker@2: command {command} has no local equivalent (the pipelines build with docker)")
    if not inputs.get("containerRegistry"):
        raise TaskFailed(f"Docker@2: command {command} requires containerRegistry")
    connection = _connection(job, inputs["containerRegistry"], "dockerregistry", "Docker@2")
    registry = job.variables.get("registry", "")
    if connection.registry and registry and connection.registry != registry:
        raise TaskFailed(f"Docker@2: service connection {inputs['containerRegistry']} logs in to "
                         f"{connection.registry}, but the pipeline pushes to {registry}")
    job.log(f"Docker@2 {command}: {connection.registry or inputs['containerRegistry']}")


def _use_python(job: JobRun, step: dict[str, Any], inputs: dict[str, str]) -> None:
    version = inputs["versionSpec"]
    candidates = [f"python{version}", "python3"] if version != "3.x" else ["python3"]
    for candidate in candidates:
        found = shutil.which(candidate, path=job.org.host_path)
        if found and _python_version(found).startswith(version.rstrip(".x")):
            found = _python_executable(found)
            break
    else:
        raise TaskFailed(f"UsePythonVersion@0: Python {version} is not in the harness's tool cache")
    tool_dir = job.agent_dir / "_tool" / f"Python-{version}" / "bin"
    tool_dir.mkdir(parents=True, exist_ok=True)
    for alias in ("python", "python3", f"python{version}"):
        link = tool_dir / alias
        if not link.exists():
            link.symlink_to(found)
    if inputs["addToPath"] == "true":
        job.prepend_path(str(tool_dir))


def _python_executable(python: str) -> str:
    """The interpreter itself, not a version manager's shim (a shim needs the host's HOME)."""
    return subprocess.run([python, "-c", "import sys; print(sys.executable)"], capture_output=True,
                          text=True, check=True).stdout.strip()


def _python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True).stdout.strip()


def _cache_key(job: JobRun, key: str) -> str:
    """Cache@2's key: segments split on `|`; a quoted segment is a string; a segment that looks like a file
    path (it contains `/` or `.`) names a file, relative to System.DefaultWorkingDirectory, that must exist
    when the task runs (the task hashes its contents; Microsoft: "This file must exist"). Returns the
    resolved key, file segments replaced by their hash."""
    parts = []
    for segment in (s.strip() for s in key.split("|")):
        if segment.startswith('"') and segment.endswith('"'):
            parts.append(segment[1:-1])
        elif "/" in segment or "." in segment or "*" in segment:
            root = job.default_working_directory
            matches = sorted(p for p in root.glob(segment) if p.is_file()) if "*" in segment else \
                [root / segment] if (root / segment).is_file() else []
            if not matches:
                raise TaskFailed(f"Cache@2: key segment '{segment}' is a file path, and no such file exists under "
                                 f"{root} (System.DefaultWorkingDirectory)")
            digest = hashlib.sha256()
            for match in matches:
                digest.update(match.read_bytes())
            parts.append(digest.hexdigest())
        else:
            parts.append(segment)
    return "|".join(parts)


def _cache(job: JobRun, step: dict[str, Any], inputs: dict[str, str]) -> None:
    """Restores the entry of the exact key, else the newest entry whose key starts with a restore key
    (in the order given); saves PATH under the exact key after the job when it was a miss."""
    key = _cache_key(job, inputs["key"])
    path = job.resolve(inputs["path"])
    store = job.org.cache_dir / hashlib.sha256(key.encode()).hexdigest()
    hit = store.is_dir()
    source = store if hit else None
    for restore in (line.strip() for line in (inputs.get("restoreKeys") or "").splitlines()):
        if source is not None or not restore:
            continue
        prefix = _cache_key(job, restore)
        entries = [e for e in job.org.cache_dir.iterdir() if (e / ".cache-key").is_file()
                   and (e / ".cache-key").read_text().startswith(prefix)]
        source = max(entries, key=lambda e: e.stat().st_mtime, default=None)
    if source is not None:
        shutil.copytree(source, path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".cache-key"))
        job.log(f"Cache@2: restored {path} ({'hit' if hit else 'restore key'})")
    else:
        job.log("Cache@2: miss")
    if not hit:
        def save() -> None:
            if path.is_dir():
                shutil.copytree(path, store, dirs_exist_ok=True)
                (store / ".cache-key").write_text(key)
        job.post_job.append(save)
    if inputs.get("cacheHitVar"):
        job.set_variable(inputs["cacheHitVar"], "true" if hit else ("inexact" if source else "false"))


def _helm_installer(job: JobRun, step: dict[str, Any], inputs: dict[str, str]) -> None:
    from devenv.helm import helm_binary

    tool_dir = job.agent_dir / "_tool" / "helm" / "bin"
    tool_dir.mkdir(parents=True, exist_ok=True)
    link = tool_dir / "helm"
    if not link.exists():
        link.symlink_to(helm_binary())
    job.prepend_path(str(tool_dir))
    job.log(f"HelmInstaller@1: helm {inputs['helmVersionToInstall']} requested; the harness's helm is used")


def _publish_test_results(job: JobRun, step: dict[str, Any], inputs: dict[str, str]) -> None:
    folder = job.resolve(inputs["searchFolder"])
    patterns = [p.strip() for p in inputs["testResultsFiles"].splitlines() if p.strip()]
    files = sorted({p for p in folder.rglob("*") if p.is_file() and
                    any(fnmatch.fnmatch(str(p.relative_to(folder)), pat) or
                        fnmatch.fnmatch(p.name, pat.rsplit("/", 1)[-1]) for pat in patterns)})
    if not files:
        message = f"PublishTestResults@2: no test result files matching {patterns} under {folder}"
        if inputs["failTaskOnMissingResultsFile"] == "true":
            raise TaskFailed(message)
        job.log("##[warning]" + message)
        return
    failed = 0
    for path in files:
        root = ElementTree.parse(path).getroot()
        if inputs["testResultsFormat"].lower() == "junit" and root.tag not in ("testsuites", "testsuite"):
            raise TaskFailed(f"PublishTestResults@2: {path} is not JUnit XML (root <{root.tag}>)")
        failed += sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in root.iter("testsuite"))
    job.published_results.extend(files)
    if failed and inputs["failTaskOnFailedTests"] == "true":
        raise TaskFailed(f"PublishTestResults@2: {failed} failed test(s)")


def host_python() -> str:
    return sys.executable
