"""Pull requests on Azure Repos (Azure DevOps Services REST API 7.1)."""

from __future__ import annotations

import base64
import os
from typing import Any
from urllib.parse import quote, urlsplit

from bot.forges.base import ForgeError, JsonApi, PullRequest, PullRequestClient
from bot.forges.remote import AzureReposRepo

API_VERSION = "7.1"
# Azure Repos rejects pull request descriptions above 4000 characters.
DESCRIPTION_LIMIT = 4000
# Thread comments take far more; the full description goes there when it does not fit.
COMMENT_LIMIT = 150_000
FULL_TEXT_HEADING = "Full description (Azure Repos limits pull request descriptions to 4000 characters):\n\n"
# Thread status "closed": the comment is a record, not a discussion reviewers must resolve.
THREAD_CLOSED = 4
# envbot's gate states (GitHub's commit-status words) -> Azure Repos GitStatusState.
STATUS_STATES = {"success": "succeeded", "pending": "pending", "failure": "failed", "error": "error"}


def key_state(latest: tuple[int, str, str] | None) -> tuple[str, str] | None:
    return None if latest is None else (latest[1], latest[2])


def _collection_org(collection_uri: str) -> str:
    """Organization named by a collection URI: https://dev.azure.com/org/ or https://org.visualstudio.com/."""
    parts = urlsplit(collection_uri)
    host = (parts.hostname or "").lower()
    if host.endswith(".visualstudio.com"):
        return host.split(".", 1)[0]
    segments = [s for s in parts.path.split("/") if s]
    return segments[-1].lower() if segments else ""


def organization_url(repo: AzureReposRepo) -> str:
    """Base URL of the organization's REST API.

    SYSTEM_COLLECTIONURI (set in every Azure Pipelines job) wins when it names the same
    organization: it is the right host for the pipeline's organization, including old
    *.visualstudio.com ones, and lets tests point the client at a local server.
    """
    collection = os.environ.get("SYSTEM_COLLECTIONURI", "")
    if collection and _collection_org(collection) == repo.organization.lower():
        return collection.rstrip("/")
    return f"https://dev.azure.com/{quote(repo.organization)}"


class AzureReposPullRequests(PullRequestClient):
    """Opens, finds and updates pull requests of one repository."""

    description_limit = DESCRIPTION_LIMIT
    truncation_note = "The full description is in the first comment."

    def __init__(self, repo: AzureReposRepo, token: str, org_url: str) -> None:
        self.repo = repo
        self.org_url = org_url.rstrip("/")
        # Basic with an empty user name: accepted for PATs and for the pipeline's System.AccessToken.
        basic = base64.b64encode(f":{token}".encode()).decode()
        self.api = JsonApi("Azure Repos", {"Authorization": f"Basic {basic}", "Accept": "application/json"})

    @classmethod
    def from_env(cls, repo: AzureReposRepo) -> AzureReposPullRequests:
        token = os.environ.get("SYSTEM_ACCESSTOKEN") or os.environ.get("AZURE_DEVOPS_EXT_PAT") or ""
        if not token:
            raise ForgeError(
                f"no token for Azure Repos repository {repo.organization}/{repo.project}/{repo.name}: "
                "set SYSTEM_ACCESSTOKEN (in a pipeline: env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)) "
                "or AZURE_DEVOPS_EXT_PAT (a PAT with Code: Read & write)"
            )
        return cls(repo, token, organization_url(repo))

    @property
    def _repo_url(self) -> str:
        return f"{self.org_url}/{quote(self.repo.project)}/_apis/git/repositories/{quote(self.repo.name)}"

    def _web_url(self, pull: dict[str, Any]) -> str:
        web = (pull.get("repository") or {}).get("webUrl") or (
            f"{self.org_url}/{quote(self.repo.project)}/_git/{quote(self.repo.name)}"
        )
        return f"{web}/pullrequest/{pull['pullRequestId']}"

    def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
              json: Any = None, expected: tuple[int, ...] = (200, 201)) -> Any:
        return self.api.call(method, f"{self._repo_url}{path}",
                             params={**(params or {}), "api-version": API_VERSION}, json=json,
                             expected=expected)

    def find_open(self, source_branch: str, target_branch: str) -> dict[str, Any] | None:
        found = self._call("GET", "/pullrequests", params={
            "searchCriteria.sourceRefName": f"refs/heads/{source_branch}",
            "searchCriteria.targetRefName": f"refs/heads/{target_branch}",
            "searchCriteria.status": "active",
        })
        pulls = (found or {}).get("value") or []
        return pulls[0] if pulls else None

    def create(self, source_branch: str, target_branch: str, title: str, body: str) -> dict[str, Any]:
        return self._call("POST", "/pullrequests", json={
            "sourceRefName": f"refs/heads/{source_branch}",
            "targetRefName": f"refs/heads/{target_branch}",
            "title": title,
            "description": body,
        }, expected=(201,))

    def is_already_open(self, error: ForgeError) -> bool:
        return error.status == 409   # TF401179: an active pull request for these branches exists

    def current(self, pull: dict[str, Any]) -> tuple[str, str]:
        return pull.get("title") or "", pull.get("description") or ""

    def update(self, pull: dict[str, Any], title: str, body: str) -> dict[str, Any]:
        return self._call("PATCH", f"/pullrequests/{pull['pullRequestId']}", json={"title": title, "description": body})

    def pull_url(self, pull: dict[str, Any]) -> str:
        return self._web_url(pull)

    def publish_statuses(self, pull: dict[str, Any], sha: str, statuses: list[tuple[str, str, str]]) -> int:
        """Pull request statuses (context "genre/name", state, description); only changed ones are posted.

        POST .../pullRequests/{id}/statuses with {state, description, context: {name, genre}}; a new
        status with the same genre and name replaces the old one, which branch policies can require.
        SHA is not sent: a pull request status belongs to the pull request, not to a commit.
        """
        pull_id = pull["pullRequestId"]
        latest: dict[str, tuple[int, str, str]] = {}
        for status in (self._call("GET", f"/pullRequests/{pull_id}/statuses") or {}).get("value") or []:
            context = status.get("context") or {}
            key = f"{context.get('genre') or ''}/{context.get('name') or ''}"
            number = int(status.get("id") or 0)
            if key not in latest or number > latest[key][0]:
                latest[key] = (number, str(status.get("state")), str(status.get("description") or ""))
        posted = 0
        for context, state, description in statuses:
            azure_state = STATUS_STATES[state]
            genre, _, name = context.rpartition("/")
            if key_state(latest.get(context)) == (azure_state, description):
                continue
            self._call("POST", f"/pullRequests/{pull_id}/statuses", json={
                "state": azure_state, "description": description,
                "context": {"name": name, "genre": genre},
            })
            posted += 1
        return posted

    def complete(self, pull: dict[str, Any], sha: str, strategy: str, message: str) -> None:
        """Complete the pull request now: status completed, merging SHA (its source commit) as STRATEGY."""
        self._call("PATCH", f"/pullrequests/{pull['pullRequestId']}", json={
            "status": "completed",
            "lastMergeSourceCommit": {"commitId": sha},
            "completionOptions": {"mergeStrategy": strategy, "deleteSourceBranch": True,
                                  "mergeCommitMessage": message},
        })

    def close(self, pull: dict[str, Any]) -> None:
        self._call("PATCH", f"/pullrequests/{pull['pullRequestId']}", json={"status": "abandoned"})

    def finish(self, pull: dict[str, Any], description: str, truncated: bool, auto_merge: bool) -> None:
        if truncated:
            self._record_full_description(pull["pullRequestId"], description)
        if auto_merge:
            self._set_auto_complete(pull, str(pull.get("title") or ""))

    def result(self, pull: dict[str, Any], created: bool) -> PullRequest:
        return PullRequest(url=self._web_url(pull), number=int(pull["pullRequestId"]), created=created)

    def _record_full_description(self, pull_id: int, description: str) -> None:
        """Post the untruncated description as a closed comment thread, once per distinct text."""
        content = (FULL_TEXT_HEADING + description)[:COMMENT_LIMIT]
        threads = self._call("GET", f"/pullRequests/{pull_id}/threads")
        for thread in (threads or {}).get("value") or []:
            if any(c.get("content") == content for c in thread.get("comments") or []):
                return
        self._call("POST", f"/pullRequests/{pull_id}/threads", json={
            "comments": [{"parentCommentId": 0, "content": content, "commentType": 1}],
            "status": THREAD_CLOSED,
        })

    def _set_auto_complete(self, pull: dict[str, Any], title: str) -> None:
        """Complete (merge) when the branch policies pass, as the identity that created it (envbot).

        A merge commit (noFastForward) keeps envbot's commits, and so their Envbot-* trailers,
        intact on the target branch.
        """
        creator = (pull.get("createdBy") or {}).get("id")
        if not creator:
            raise ForgeError(f"Azure Repos: pull request {pull['pullRequestId']} has no createdBy.id "
                             "to set auto-complete with")
        self._call("PATCH", f"/pullrequests/{pull['pullRequestId']}", json={
            "autoCompleteSetBy": {"id": creator},
            "completionOptions": {
                "mergeStrategy": "noFastForward",
                "deleteSourceBranch": True,
                "mergeCommitMessage": title,
            },
        })
