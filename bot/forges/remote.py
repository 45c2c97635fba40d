"""Which forge hosts a git remote, from its URL alone (no network)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class GitHubRepo:
    owner: str
    name: str


@dataclass(frozen=True)
class AzureReposRepo:
    organization: str
    project: str
    name: str


# git@github.com:owner/repo.git  (scp-like ssh syntax)
_GITHUB_SCP = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):(?P<path>[^/].*)$")
# git@ssh.dev.azure.com:v3/org/project/repo, org@vs-ssh.visualstudio.com:v3/org/project/repo
_AZURE_SSH = re.compile(
    r"^(?:ssh://)?[\w.-]+@(?:ssh\.dev\.azure\.com|vs-ssh\.visualstudio\.com)[:/]v3/"
    r"(?P<org>[^/]+)/(?P<project>[^/]+)/(?P<repo>[^/]+?)/?$"
)


def _github_hosts() -> set[str]:
    hosts = {"github.com", "www.github.com"}
    # GitHub Enterprise Server under GitHub Actions: GITHUB_SERVER_URL names the instance.
    server = os.environ.get("GITHUB_SERVER_URL", "")
    if server:
        host = urlsplit(server).hostname
        if host:
            hosts.add(host.lower())
    return hosts


def _strip_git(name: str) -> str:
    return name[:-4] if name.endswith(".git") else name


def _github_from_path(path: str) -> GitHubRepo | None:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) != 2:
        return None
    return GitHubRepo(owner=parts[0], name=_strip_git(parts[1]))


def _azure_from_https(host: str, path: str) -> AzureReposRepo | None:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if "_git" not in parts:
        return None
    at = parts.index("_git")
    if at + 1 >= len(parts):
        return None
    repo = _strip_git(parts[at + 1])
    before = parts[:at]
    if host == "dev.azure.com":
        # /org/project/_git/repo ; /org/_git/repo means project == repo
        if len(before) == 2:
            return AzureReposRepo(before[0], before[1], repo)
        if len(before) == 1:
            return AzureReposRepo(before[0], repo, repo)
        return None
    org = host.split(".", 1)[0]
    # https://org.visualstudio.com[/DefaultCollection]/project/_git/repo
    if before and before[0].lower() == "defaultcollection":
        before = before[1:]
    if len(before) == 1:
        return AzureReposRepo(org, before[0], repo)
    if not before:
        return AzureReposRepo(org, repo, repo)
    return None


def parse_remote(url: str) -> GitHubRepo | AzureReposRepo | None:
    """The forge repository behind a git remote URL; None for any other remote (plain git)."""
    url = url.strip()
    match = _AZURE_SSH.match(url)
    if match:
        return AzureReposRepo(unquote(match["org"]), unquote(match["project"]), _strip_git(unquote(match["repo"])))
    if "://" not in url:
        scp = _GITHUB_SCP.match(url)
        if scp and scp["host"].lower() in _github_hosts():
            return _github_from_path(scp["path"])
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http", "ssh", "git"):
        return None
    if host in _github_hosts():
        return _github_from_path(parts.path)
    if host == "dev.azure.com" or host.endswith(".visualstudio.com"):
        return _azure_from_https(host, parts.path)
    return None
