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
    "open_or_update_pull_request",
    "parse_remote",
]


def open_or_update_pull_request(remote_url: str, source_branch: str, target_branch: str, title: str,
                                description: str, auto_merge: bool = False) -> PullRequest | None:
    """Open a pull request source_branch -> target_branch, or update the open one for those branches.

    Idempotent: running the same promotion again updates the title and description of its open
    pull request instead of opening another. Returns None for remotes that are neither GitHub
    nor Azure Repos. Raises ForgeError (missing token, HTTP error with the API's message).
    """
    repo = parse_remote(remote_url)
    if isinstance(repo, GitHubRepo):
        client: GitHubPullRequests | AzureReposPullRequests = GitHubPullRequests.from_env(repo)
    elif isinstance(repo, AzureReposRepo):
        client = AzureReposPullRequests.from_env(repo)
    else:
        return None
    return client.open_or_update(source_branch, target_branch, title, description, auto_merge)
