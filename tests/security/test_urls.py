"""One URL parser, and userinfo never printed (docs/security.md, case 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.urls import AzureReposRepo, GitHubRepo, parse_remote_url, redact, redact_text
from tests.bot.envrepo import run_envbot
from tests.security.conftest import envbot_env


@pytest.mark.parametrize(("url", "scheme", "host", "forge"), [
    ("https://github.com/contoso/ai-app.git", "https", "github.com", GitHubRepo("contoso", "ai-app")),
    ("https://x-access-token:t@github.com/contoso/ai-app", "https", "github.com", GitHubRepo("contoso", "ai-app")),
    ("git@github.com:contoso/ai-app.git", "ssh", "github.com", GitHubRepo("contoso", "ai-app")),
    ("ssh://git@github.com/contoso/ai-app.git", "ssh", "github.com", GitHubRepo("contoso", "ai-app")),
    ("https://org@dev.azure.com/org/proj/_git/envs", "https", "dev.azure.com", AzureReposRepo("org", "proj", "envs")),
    ("git@ssh.dev.azure.com:v3/org/proj/envs", "ssh", "ssh.dev.azure.com", AzureReposRepo("org", "proj", "envs")),
    ("https://org.visualstudio.com/DefaultCollection/proj/_git/envs", "https", "org.visualstudio.com",
     AzureReposRepo("org", "proj", "envs")),
    ("https://gitlab.example/group/envs.git", "https", "gitlab.example", None),
    ("file:///srv/git/envs.git", "file", "", None),
    ("/srv/git/envs.git", "", "", None),
])
def test_parse_remote_url(url: str, scheme: str, host: str, forge: object) -> None:
    remote = parse_remote_url(url)
    assert (remote.scheme, remote.host, remote.forge) == (scheme, host, forge)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:secret@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://ghp_secret@github.com/o/r.git", "https://github.com/o/r.git"),
    ("http://u:p@127.0.0.1:8080/x?y=1", "http://127.0.0.1:8080/x?y=1"),
    ("ssh://git:secret@host/x.git", "ssh://git@host/x.git"),
    ("git:secret@host:x.git", "git@host:x.git"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ("/srv/git/envs.git", "/srv/git/envs.git"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
    if "://" in url:   # in free text only scheme://userinfo@ is recognisable as a URL
        assert redact_text(f"fatal: unable to access '{url}': 403") == f"fatal: unable to access '{shown}': 403"


def test_repo_url_credentials_are_not_printed_in_errors(tmp_path: Path) -> None:
    secret = "repo-userinfo-secret"
    proc = run_envbot("status", "--repo", f"https://envbot:{secret}@127.0.0.1:9/envs.git",
                      env=envbot_env(tmp_path), check=False)
    assert secret not in proc.stderr + proc.stdout
    assert "https://127.0.0.1:9/envs.git" in proc.stderr
