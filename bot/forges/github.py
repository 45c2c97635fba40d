"""Pull requests on GitHub (REST API 2022-11-28; auto-merge through GraphQL)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from bot.forges.base import ForgeError, JsonApi, PullRequest, PullRequestClient
from bot.forges.remote import GitHubRepo

# GitHub rejects bodies above 65536 characters.
DESCRIPTION_LIMIT = 65536
DEFAULT_API_URL = "https://api.github.com"
# Commit status descriptions are short; GitHub refuses long ones.
STATUS_DESCRIPTION_LIMIT = 140

_ENABLE_AUTO_MERGE = """
mutation EnableAutoMerge($pullRequestId: ID!) {
  enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: MERGE}) {
    pullRequest { number autoMergeRequest { enabledAt } }
  }
}
"""


class GitHubPullRequests(PullRequestClient):
    """Opens, finds and updates pull requests of one repository."""

    description_limit = DESCRIPTION_LIMIT
    truncation_note = f"GitHub limits pull request descriptions to {DESCRIPTION_LIMIT} characters."

    def __init__(self, repo: GitHubRepo, token: str, api_url: str, graphql_url: str) -> None:
        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.graphql_url = graphql_url
        self.api = JsonApi("GitHub", {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        })

    @classmethod
    def from_env(cls, repo: GitHubRepo) -> GitHubPullRequests:
        token = os.environ.get("GITHUB_TOKEN", "")
        if not token:
            raise ForgeError(
                f"no token for GitHub repository {repo.owner}/{repo.name}: set GITHUB_TOKEN "
                "(a token allowed to write pull requests and contents)"
            )
        # GITHUB_API_URL / GITHUB_GRAPHQL_URL: the GitHub Actions variables (GitHub Enterprise Server).
        api_url = os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
        graphql_url = os.environ.get("GITHUB_GRAPHQL_URL") or f"{api_url.rstrip('/')}/graphql"
        return cls(repo, token, api_url, graphql_url)

    @property
    def _pulls_url(self) -> str:
        return f"{self.api_url}/repos/{quote(self.repo.owner)}/{quote(self.repo.name)}/pulls"

    def find_open(self, source_branch: str, target_branch: str) -> dict[str, Any] | None:
        pulls = self.api.call("GET", self._pulls_url, params={
            "head": f"{self.repo.owner}:{source_branch}",
            "base": target_branch,
            "state": "open",
        })
        return pulls[0] if pulls else None

    def create(self, source_branch: str, target_branch: str, title: str, body: str) -> dict[str, Any]:
        return self.api.call("POST", self._pulls_url, json={
            "title": title, "head": source_branch, "base": target_branch, "body": body,
        }, expected=(201,))

    def is_already_open(self, error: ForgeError) -> bool:
        return error.status == 422   # "A pull request already exists for ..."

    def current(self, pull: dict[str, Any]) -> tuple[str, str]:
        return pull.get("title") or "", pull.get("body") or ""

    def update(self, pull: dict[str, Any], title: str, body: str) -> dict[str, Any]:
        return self.api.call("PATCH", f"{self._pulls_url}/{pull['number']}", json={"title": title, "body": body})

    def finish(self, pull: dict[str, Any], description: str, truncated: bool, auto_merge: bool) -> None:
        if auto_merge:
            self.enable_auto_merge(pull)

    def result(self, pull: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(url=pull["html_url"], number=int(pull["number"]), created=created)

    @property
    def _repo_url(self) -> str:
        return f"{self.api_url}/repos/{quote(self.repo.owner)}/{quote(self.repo.name)}"

    def pull_url(self, pull: dict[str, Any]) -> str:
        return str(pull["html_url"])

    def publish_statuses(self, pull: dict[str, Any], sha: str, statuses: list[tuple[str, str, str]]) -> int:
        """Commit statuses (context, state, description) on SHA, the pull request's head; only changed ones.

        POST /repos/{owner}/{repo}/statuses/{sha} (state: error, failure, pending or success); the
        latest status per context wins, so an unchanged gate is not posted again.
        """
        current: dict[str, tuple[str, str]] = {}
        # Newest first: the first status seen for a context is its current one.
        for status in self.api.call("GET", f"{self._repo_url}/commits/{sha}/statuses",
                                    params={"per_page": "100"}) or []:
            current.setdefault(str(status.get("context")), (str(status.get("state")),
                                                            str(status.get("description") or "")))
        posted = 0
        for context, state, description in statuses:
            text = description if len(description) <= STATUS_DESCRIPTION_LIMIT else (
                description[:STATUS_DESCRIPTION_LIMIT - 1] + "…")
            if current.get(context) == (state, text):
                continue
            self.api.call("POST", f"{self._repo_url}/statuses/{sha}", json={
                "state": state, "description": text, "context": context,
            }, expected=(201,))
            posted += 1
        return posted

    def complete(self, pull: dict[str, Any], sha: str, strategy: str, message: str) -> None:
        """Merge the pull request (PUT .../pulls/{n}/merge), only if its head is still SHA."""
        method = "squash" if strategy == "squash" else "merge"
        title, _, body = message.partition("\n")
        self.api.call("PUT", f"{self._pulls_url}/{pull['number']}/merge", json={
            "merge_method": method, "sha": sha, "commit_title": title, "commit_message": body.strip("\n"),
        })

    def close(self, pull: dict[str, Any]) -> None:
        self.api.call("PATCH", f"{self._pulls_url}/{pull['number']}", json={"state": "closed"})

    def enable_auto_merge(self, pull: dict[str, Any]) -> None:
        """Merge when the branch protection's checks pass (repository setting "Allow auto-merge").

        GitHub refuses auto-merge on a pull request that can already be merged ("clean status"):
        then it is merged right away, which is what auto-merge would have done.
        """
        result = self.api.call("POST", self.graphql_url, json={
            "query": _ENABLE_AUTO_MERGE, "variables": {"pullRequestId": pull["node_id"]},
        })
        errors = (result or {}).get("errors") or []
        if not errors:
            return
        messages = "; ".join(str(e.get("message", e)) for e in errors)
        if "clean status" in messages.lower():
            self.api.call("PUT", f"{self._pulls_url}/{pull['number']}/merge",
                          json={"merge_method": "merge"})
            return
        raise ForgeError(f"GitHub: cannot enable auto-merge on pull request #{pull['number']}: {messages}")
