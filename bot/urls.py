"""Remote URLs, parsed once: scheme, host, path, the forge repository behind them, and a printable form.

Every URL envbot prints or writes (pull-request descriptions, error messages, progress notes) goes
through `redact`, which drops userinfo: `https://<token>@dev.azure.com/...` is how CI and people pass
credentials to git, and a token must never land in a pull request or a log.
"""

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


@dataclass(frozen=True)
class RemoteUrl:
    """A git remote as written: URL (scheme://...), scp-like ssh (user@host:path) or a local path."""

    text: str                    # as given, credentials included: pass to git, never print
    scheme: str                  # https, http, ssh, git, file; "ssh" for scp-like; "" for a local path
    host: str                    # lower-case host name; "" for file:// and local paths
    port: int | None
    path: str                    # path on the host (or the local path), without userinfo or query
    forge: GitHubRepo | AzureReposRepo | None

    @property
    def is_local(self) -> bool:
        return self.scheme in ("", "file")

    @property
    def redacted(self) -> str:
        return redact(self.text)


# user@host:path (scp-like ssh syntax): no "://", and the colon comes before any slash.
_SCP = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[\w.-]+):(?P<path>(?!//).*)$")
# git@ssh.dev.azure.com:v3/org/project/repo, org@vs-ssh.visualstudio.com:v3/org/project/repo
_AZURE_SSH_HOSTS = ("ssh.dev.azure.com", "vs-ssh.visualstudio.com")
# scheme://userinfo@ anywhere in a text (git's stderr, an exception message): userinfo is dropped.
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def github_hosts() -> set[str]:
    """github.com, plus the GitHub Enterprise Server instance GITHUB_SERVER_URL names (GitHub Actions)."""
    hosts = {"github.com", "www.github.com"}
    server = os.environ.get("GITHUB_SERVER_URL", "")
    if server:
        host = urlsplit(server).hostname
        if host:
            hosts.add(host.lower())
    return hosts


# Extra hosts whose repositories image labels may name as their source (comma-separated host names).
SOURCE_HOSTS_VAR = "ENVBOT_SOURCE_HOSTS"


def source_hosts() -> set[str]:
    """Forge hosts a source URL from an image label may point at: GitHub (and GITHUB_SERVER_URL's
    instance), Azure Repos (https and ssh) and any host listed in ENVBOT_SOURCE_HOSTS."""
    extra = {h.strip().lower() for h in os.environ.get(SOURCE_HOSTS_VAR, "").split(",") if h.strip()}
    return github_hosts() | {"dev.azure.com", *_AZURE_SSH_HOSTS} | extra


def is_source_host(host: str) -> bool:
    return host in source_hosts() or (host.endswith(".visualstudio.com") and host.count(".") == 2)


def _strip_git(name: str) -> str:
    return name[:-4] if name.endswith(".git") else name


def _github_from_path(path: str) -> GitHubRepo | None:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) != 2:
        return None
    return GitHubRepo(owner=parts[0], name=_strip_git(parts[1]))


def _azure_from_ssh(path: str) -> AzureReposRepo | None:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if len(parts) != 4 or parts[0] != "v3":
        return None
    return AzureReposRepo(parts[1], parts[2], _strip_git(parts[3]))


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


def _forge(scheme: str, host: str, path: str) -> GitHubRepo | AzureReposRepo | None:
    if scheme not in ("https", "http", "ssh", "git"):
        return None
    if host in _AZURE_SSH_HOSTS:
        return _azure_from_ssh(path) if scheme == "ssh" else None
    if host in github_hosts():
        return _github_from_path(path)
    if host == "dev.azure.com" or host.endswith(".visualstudio.com"):
        return _azure_from_https(host, path)
    return None


def parse_remote_url(text: str) -> RemoteUrl:
    """Parse a git remote: URL, scp-like ssh or local path (anything without a scheme or an scp host)."""
    stripped = text.strip()
    if "://" not in stripped:
        scp = _SCP.match(stripped)
        if scp and "/" not in scp["host"]:
            host = scp["host"].lower()
            return RemoteUrl(stripped, "ssh", host, None, scp["path"], _forge("ssh", host, scp["path"]))
        return RemoteUrl(stripped, "", "", None, stripped, None)
    parts = urlsplit(stripped)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return RemoteUrl(stripped, scheme, host, port, parts.path, _forge(scheme, host, parts.path))


def parse_remote(url: str) -> GitHubRepo | AzureReposRepo | None:
    """The forge repository behind a git remote URL; None for any other remote (plain git)."""
    return parse_remote_url(url).forge


def redact(url: str) -> str:
    """URL without userinfo (`https://user:token@host/x` -> `https://host/x`); other text unchanged.

    ssh URLs keep their user name (`ssh://git@host/x`): it selects the account, it is not a secret,
    and ssh never takes a password in the URL; a password there is dropped all the same.
    """
    text = url.strip()
    if "://" not in text:
        scp = _SCP.match(text)
        if scp and scp["user"] is not None and ":" in scp["user"]:
            return f"{scp['user'].split(':', 1)[0]}@{scp['host']}:{scp['path']}"
        return text
    parts = urlsplit(text)
    if "@" not in parts.netloc:
        return text
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if parts.scheme.lower() in ("ssh", "git+ssh", "ssh+git") and userinfo:
        hostport = f"{userinfo.split(':', 1)[0]}@{hostport}"
    return parts._replace(netloc=hostport).geturl()


def redact_text(text: str) -> str:
    """TEXT with userinfo removed from every URL in it (error messages, git's stderr)."""
    def keep_ssh_user(match: re.Match[str]) -> str:
        scheme = match.group(1)
        if scheme.lower().startswith("ssh"):
            user = match.group(0)[len(scheme):-1].split(":", 1)[0]
            return f"{scheme}{user}@"
        return scheme

    return _USERINFO_IN_TEXT.sub(keep_ssh_user, text)
