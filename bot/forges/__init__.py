"""Pull requests on the forge that hosts the environments repository: GitHub or Azure Repos.

The forge is chosen from the remote URL; any other remote (a bare repository, a file path, a
self-hosted git server) has no pull requests and gets None.
"""

from __future__ import annotations

from bot.forges.azure_repos import AzureReposPullRequests
from bot.forges.base import ForgeError, PullRequest
from bot.forges.github import GitHubPullRequests
from bot.forges.remote import AzureReposRepo, GitHubRepo, parse_remote

__all__ = [
    "AzureReposRepo",
    "ForgeError",
    "GitHubRepo",
    "PullRequest",
    "forge_client",
    "open_or_update_pull_request",
    "parse_remote",
]


def forge_client(remote_url: str) -> GitHubPullRequests | AzureReposPullRequests | None:
    """The pull-request client of the forge hosting REMOTE_URL; None for a plain git remote.

    Both clients offer find_open, open_or_update, publish_statuses, complete, close and pull_url.
    """
    repo = parse_remote(remote_url)
    if isinstance(repo, GitHubRepo):
        return GitHubPullRequests.from_env(repo)
    if isinstance(repo, AzureReposRepo):
        return AzureReposPullRequests.from_env(repo)
    return None


def open_or_update_pull_request(remote_url: str, source_branch: str, target_branch: str, title: str,
                                description: str, auto_merge: bool = False) -> PullRequest | None:
    """Open a pull request source_branch -> target_branch, or update the open one for those branches.

    Idempotent: running the same promotion again updates the title and description of its open
    pull request instead of opening another. Returns None for remotes that are neither GitHub
    nor Azure Repos. Raises ForgeError (missing token, HTTP error with the API's message).
    """
    client = forge_client(remote_url)
    if client is None:
        return None
    return client.open_or_update(source_branch, target_branch, title, description, auto_merge)
