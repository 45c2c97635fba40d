"""The Azure DevOps project the harness runs pipelines in: the application repository (a snapshot of this
working tree, uncommitted changes included) and, in the separate layout, the environments repository made
the way docs/bootstrap-aks.md makes it (this repository's `environments/` folder, folder name included),
both served by the token-checking git http-backend stand-in."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.pipelines.azure_repos_git import serve
from tests.pipelines.azure_schema import REPO_ROOT, load_yaml
from tests.pipelines.harness.runner import (
    JobResult,
    Organization,
    PipelineRun,
    RunResult,
    Trigger,
    host_path_without,
)
from tests.pipelines.harness.tasks import ServiceConnection

APP_REPOSITORY = "ai-app"
ADMIN_TOKEN = "project-admin"       # collection-scoped: what the tests use to prepare and inspect repositories
GIT_IDENTITY = ["-c", "user.name=Harness", "-c", "user.email=harness@example.invalid"]
LAYOUTS = ("separate", "single")
# The host's trust store and proxy settings: the agent image's network configuration (a hosted agent has
# its own). Nothing else of the host's environment reaches the steps.
HOST_NETWORK_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                    "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS")


def environments_repository_name(pipeline: Path) -> str:
    """The environments repository a pipeline declares (its `environments` repository resource)."""
    resources = (load_yaml(pipeline).get("resources") or {}).get("repositories") or []
    names = [r["name"] for r in resources if r.get("repository") == "environments"]
    if not names:
        raise LookupError(f"{pipeline}: no `environments` repository resource")
    return names[0]


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _tracked_files() -> list[str]:
    listing = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True, text=True).stdout
    return [f for f in listing.split("\0") if f and (REPO_ROOT / f).is_file()]


def _commit_tree(source_files: list[tuple[Path, str]], work: Path, bare: Path, message: str) -> str:
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    for source, relative in source_files:
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git(work, "add", "-A")
    git(work, *GIT_IDENTITY, "commit", "-q", "-m", message)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    git(bare, "config", "uploadpack.allowReachableSHA1InWant", "true")   # Azure Repos serves commits by id
    return git(work, "rev-parse", "HEAD")


@dataclass
class Project:
    org: Organization
    root: Path
    layout: str
    app_commit: str
    environments_repository: str     # the repository envbot pins into (the app repository in the single layout)

    def run(self, pipeline: str, trigger: Trigger | None = None, parameters: dict[str, Any] | None = None,
            jobs: set[str] | None = None, until: dict[str, str] | None = None,
            resource_commits: dict[str, str] | None = None, given: dict[str, JobResult] | None = None) -> RunResult:
        path = self.root / "src" / APP_REPOSITORY / pipeline
        run = PipelineRun(path, self.org, trigger or Trigger(), parameters, self.root / "agent", self.app_commit,
                          resource_commits)
        if self.layout == "single" and "environments" in run.resources:
            # docs/pipelines.md: in the single-repository layout the `environments` resource names the
            # application repository itself.
            run.resources["environments"] = {**run.resources["environments"], "name": APP_REPOSITORY}
        return run.run(jobs, until, given)

    def pull_request(self, repository: str, files: dict[str, str], number: int = 1,
                     target: str = "main") -> str:
        """Opens pull request NUMBER on REPOSITORY changing FILES; returns the commit of its merge ref
        (refs/pull/N/merge), which Azure Repos makes and a PR build checks out."""
        work = self.root / f"pr-{repository}-{number}"
        self.clone(repository, work)
        for relative, text in files.items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_text(text)
        git(work, "checkout", "-q", "-b", f"pr-{number}")
        git(work, "add", "-A")
        git(work, *GIT_IDENTITY, "commit", "-q", "-m", f"pull request {number}")
        git(work, "checkout", "-q", "--detach", f"origin/{target}")
        git(work, *GIT_IDENTITY, "merge", "-q", "--no-ff", "-m", f"Merge pull request {number}", f"pr-{number}")
        merge = git(work, "rev-parse", "HEAD")
        git(work, "push", "-q", "origin", f"HEAD:refs/pull/{number}/merge", f"pr-{number}:refs/heads/pr-{number}")
        return merge

    def clone(self, repository: str, into: Path) -> Path:
        url = self.org.git.url(repository)
        subprocess.run(["git", "-c", f"http.extraheader=AUTHORIZATION: bearer {ADMIN_TOKEN}", "clone", "-q", url,
                        str(into)], check=True, capture_output=True)
        git(into, "config", "http.extraheader", f"AUTHORIZATION: bearer {ADMIN_TOKEN}")
        return into

    def head(self, repository: str, ref: str = "refs/heads/main") -> str:
        return git(self.root / "repos" / f"{repository}.git", "rev-parse", ref)


@contextmanager
def project(tmp: Path, layout: str, *, variable_groups: dict[str, dict[str, str]] | None = None,
            service_connections: dict[str, ServiceConnection] | None = None,
            extra_env: dict[str, str] | None = None, cache_dir: Path | None = None) -> Iterator[Project]:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    repos = tmp / "repos"
    repos.mkdir(parents=True)
    files = _tracked_files()
    app_commit = _commit_tree([(REPO_ROOT / f, f) for f in files], tmp / "src" / APP_REPOSITORY,
                              repos / f"{APP_REPOSITORY}.git", "ai-app")
    environments_repository = APP_REPOSITORY
    if layout == "separate":
        environments_repository = environments_repository_name(REPO_ROOT / "azure-pipelines.yml")
        env_files = [(REPO_ROOT / f, f) for f in files if f.startswith("environments/")]
        _commit_tree(env_files, tmp / "src" / environments_repository, repos / f"{environments_repository}.git",
                     "Environments of ai-app")
    virtualenv = os.environ.get("VIRTUAL_ENV")
    image_bin = tmp / "agent-image" / "bin"
    image_bin.mkdir(parents=True)
    if os.geteuid() == 0 and shutil.which("sudo") is None:
        # Hosted agents run steps as a user with passwordless sudo; here the steps already run as root.
        # `env` takes sudo's leading VAR=value arguments (sudo DEBIAN_FRONTEND=noninteractive apt-get ...).
        (image_bin / "sudo").write_text('#!/bin/sh\nexec env "$@"\n')
        (image_bin / "sudo").chmod(0o755)
    network = {name: os.environ[name] for name in HOST_NETWORK_ENV if name in os.environ}
    if "NODE_EXTRA_CA_CERTS" in network:
        network["NPM_CONFIG_CAFILE"] = network["NODE_EXTRA_CA_CERTS"]   # npm ci checks against it
    with serve(repos, ADMIN_TOKEN) as server:
        org = Organization(git=server, self_repository=APP_REPOSITORY, variable_groups=variable_groups or {},
                           service_connections=service_connections or {},
                           cache_dir=cache_dir or tmp / "pipeline-caches",
                           host_path=f"{image_bin}:{host_path_without(virtualenv)}",
                           extra_env={**network, **(extra_env or {})})
        org.cache_dir.mkdir(parents=True, exist_ok=True)
        yield Project(org, tmp, layout, app_commit, environments_repository)
