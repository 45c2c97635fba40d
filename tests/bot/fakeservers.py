"""Local stand-ins for the GitHub, Azure Repos and Argo CD REST APIs (they cannot run here).

Each implements the documented request and response shapes of the calls envbot makes, keeps
state (pull requests, threads, Applications) and CHECKS what it is sent: authentication, API
version headers or query, required JSON fields and branch refs. A request that breaks the
documented contract is answered 400 and recorded in `violations`, which the fixtures assert empty.
Servers listen on 127.0.0.1 on a free port and are stopped by the fixtures.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str                       # unquoted path, as sent
    query: dict[str, str]
    headers: dict[str, str]         # lower-case names
    body: Any                       # decoded JSON or None


Reply = tuple[int, Any]


class FakeServer:
    """An HTTP server on 127.0.0.1 that hands every request to `handle` and records it."""

    def __init__(self, handle: Callable[[Request], Reply]) -> None:
        self.handle = handle
        self.requests: list[Request] = []
        self.violations: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                request = Request(
                    method=self.command,
                    path=unquote(parts.path),
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                server.requests.append(request)
                status, payload = server.handle(request)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Short poll interval: stop() returns quickly.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def violation(self, message: str) -> Reply:
        self.violations.append(message)
        return 400, {"message": f"fake server: contract violation: {message}"}


# --- GitHub ------------------------------------------------------------------------------------

@dataclass
class GitHubState:
    owner: str = "contoso"
    repo: str = "environments"
    token: str = "ghp_test_token"
    allow_auto_merge: bool = True
    mergeable_now: bool = False     # "clean status": no required checks pending
    race_on_create: bool = False    # another run opens the same pull request first
    pulls: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # sha -> statuses, oldest first
    merges: list[dict[str, Any]] = field(default_factory=list)                # PUT .../merge bodies


GITHUB_STATUS_STATES = ("error", "failure", "pending", "success")
GITHUB_MERGE_METHODS = ("merge", "squash", "rebase")


class FakeGitHub:
    """GitHub REST API (2022-11-28) pulls endpoints and the enablePullRequestAutoMerge mutation."""

    def __init__(self, state: GitHubState | None = None) -> None:
        self.state = state or GitHubState()
        self.server = FakeServer(self.handle)

    def _new_pull(self, title: str, head: str, base: str, body: str) -> dict[str, Any]:
        number = len(self.state.pulls) + 1
        pull = {
            "number": number,
            "node_id": f"PR_kwDO{number:06d}",
            "state": "open",
            "title": title,
            "body": body,
            "html_url": f"https://github.com/{self.state.owner}/{self.state.repo}/pull/{number}",
            "url": f"{self.server.url}/repos/{self.state.owner}/{self.state.repo}/pulls/{number}",
            "head": {"ref": head, "label": f"{self.state.owner}:{head}"},
            "base": {"ref": base},
            "merged": False,
            "auto_merge": None,
        }
        self.state.pulls.append(pull)
        return pull

    def _check_headers(self, request: Request) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {self.state.token}":
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                         "status": "401"}
        if request.headers.get("accept") != "application/vnd.github+json":
            return self.server.violation(f"Accept header is {request.headers.get('accept')!r}")
        if request.headers.get("x-github-api-version") != "2022-11-28":
            return self.server.violation("X-GitHub-Api-Version header missing or wrong")
        return None

    def handle(self, request: Request) -> Reply:
        refused = self._check_headers(request)
        if refused:
            return refused
        if request.path == "/graphql" and request.method == "POST":
            return self._graphql(request)
        repo_prefix = f"/repos/{self.state.owner}/{self.state.repo}"
        if request.path.startswith(f"{repo_prefix}/statuses/") or request.path.startswith(f"{repo_prefix}/commits/"):
            return self._statuses(request, request.path[len(repo_prefix):].strip("/").split("/"))
        prefix = f"/repos/{self.state.owner}/{self.state.repo}/pulls"
        if not request.path.startswith(prefix):
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest",
                         "status": "404"}
        rest = request.path[len(prefix):].strip("/").split("/") if request.path != prefix else []
        if not rest and request.method == "GET":
            return self._list(request)
        if not rest and request.method == "POST":
            return self._create(request)
        pull = next((p for p in self.state.pulls if rest and str(p["number"]) == rest[0]), None)
        if pull is None:
            return 404, {"message": "Not Found", "status": "404"}
        if len(rest) == 1 and request.method == "PATCH":
            body = request.body or {}
            unknown = set(body) - {"title", "body", "state", "base", "maintainer_can_modify"}
            if unknown:
                return self.server.violation(f"PATCH pull fields {sorted(unknown)}")
            if len(body.get("body") or "") > 65536:
                return 422, {"message": "Validation Failed", "errors": [
                    {"resource": "Issue", "code": "custom", "field": "body",
                     "message": "body is too long (maximum is 65536 characters)"}]}
            if "state" in body and body["state"] not in ("open", "closed"):
                return self.server.violation(f"PATCH pull state {body['state']!r}")
            pull.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
            return 200, pull
        if rest[1:] == ["merge"] and request.method == "PUT":
            body = request.body or {}
            if set(body) - {"commit_title", "commit_message", "sha", "merge_method"}:
                return self.server.violation(f"merge fields {sorted(body)}")
            if body.get("merge_method", "merge") not in GITHUB_MERGE_METHODS:
                return self.server.violation(f"merge_method {body.get('merge_method')!r}")
            if pull["state"] != "open":
                return 405, {"message": "Pull Request is not mergeable", "status": "405"}
            if body.get("sha") and pull.get("head", {}).get("sha") and body["sha"] != pull["head"]["sha"]:
                return 409, {"message": "Head branch was modified. Review and try the merge again.", "status": "409"}
            self.state.merges.append({"number": pull["number"], **body})
            pull.update(merged=True, state="closed")
            return 200, {"sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "merged": True,
                         "message": "Pull Request successfully merged"}
        return 404, {"message": "Not Found", "status": "404"}

    def _statuses(self, request: Request, parts: list[str]) -> Reply:
        """POST /repos/{o}/{r}/statuses/{sha}; GET /repos/{o}/{r}/commits/{ref}/statuses (newest first)."""
        if parts[0] == "statuses" and len(parts) == 2 and request.method == "POST":
            sha, body = parts[1], request.body or {}
            if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
                return 422, {"message": "No commit found for SHA: " + sha, "status": "422"}
            if body.get("state") not in GITHUB_STATUS_STATES:
                return self.server.violation(f"status state {body.get('state')!r}")
            if set(body) - {"state", "target_url", "description", "context"}:
                return self.server.violation(f"status fields {sorted(body)}")
            if len(body.get("description") or "") > 140:
                return 422, {"message": "Validation Failed", "errors": [
                    {"resource": "Status", "code": "custom", "field": "description",
                     "message": "description is too long (maximum is 140 characters)"}]}
            status = {"id": sum(len(v) for v in self.state.statuses.values()) + 1,
                      "context": body.get("context") or "default", "state": body["state"],
                      "description": body.get("description"), "target_url": body.get("target_url")}
            self.state.statuses.setdefault(sha, []).append(status)
            return 201, status
        if parts[0] == "commits" and parts[2:] == ["statuses"] and request.method == "GET":
            return 200, list(reversed(self.state.statuses.get(parts[1], [])))
        return 404, {"message": "Not Found", "status": "404"}

    def current_statuses(self, sha: str) -> dict[str, dict[str, Any]]:
        """context -> its latest status on SHA (what GitHub shows on the pull request)."""
        return {s["context"]: s for s in self.state.statuses.get(sha, [])}

    def _list(self, request: Request) -> Reply:
        head = request.query.get("head", "")
        if ":" not in head:
            return self.server.violation(f"head filter {head!r} is not owner:branch")
        owner, branch = head.split(":", 1)
        state = request.query.get("state", "open")
        found = [
            p for p in self.state.pulls
            if owner == self.state.owner and p["head"]["ref"] == branch
            and (state == "all" or p["state"] == state)
            and ("base" not in request.query or p["base"]["ref"] == request.query["base"])
        ]
        return 200, found

    def _create(self, request: Request) -> Reply:
        body = request.body or {}
        missing = [k for k in ("title", "head", "base") if not body.get(k)]
        if missing:
            return self.server.violation(f"create pull without {missing}")
        if body["head"].startswith("refs/") or body["base"].startswith("refs/"):
            return self.server.violation("GitHub takes branch names, not refs")
        if len(body.get("body") or "") > 65536:
            return 422, {"message": "Validation Failed", "errors": [
                {"resource": "Issue", "code": "custom", "field": "body",
                 "message": "body is too long (maximum is 65536 characters)"}]}
        if self.state.race_on_create:
            self.state.race_on_create = False
            self._new_pull("opened by another run", body["head"], body["base"], "")
        if any(p["state"] == "open" and p["head"]["ref"] == body["head"] and p["base"]["ref"] == body["base"]
               for p in self.state.pulls):
            return 422, {"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "code": "custom",
                 "message": f"A pull request already exists for {self.state.owner}:{body['head']}."}],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"}
        return 201, self._new_pull(body["title"], body["head"], body["base"], body.get("body") or "")

    def _graphql(self, request: Request) -> Reply:
        body = request.body or {}
        query = body.get("query") or ""
        if "enablePullRequestAutoMerge" not in query:
            return self.server.violation("unexpected GraphQL operation")
        node_id = (body.get("variables") or {}).get("pullRequestId")
        pull = next((p for p in self.state.pulls if p["node_id"] == node_id), None)
        if pull is None:
            return 200, {"data": None, "errors": [
                {"type": "NOT_FOUND", "message": f"Could not resolve to a node with the global id of '{node_id}'"}]}
        if not self.state.allow_auto_merge:
            return 200, {"data": {"enablePullRequestAutoMerge": None}, "errors": [
                {"type": "UNPROCESSABLE", "message": "Pull request Auto merge is not allowed for this repository"}]}
        if self.state.mergeable_now:
            return 200, {"data": {"enablePullRequestAutoMerge": None}, "errors": [
                {"type": "UNPROCESSABLE", "message": "Pull request Pull request is in clean status"}]}
        pull["auto_merge"] = {"merge_method": "merge"}
        return 200, {"data": {"enablePullRequestAutoMerge": {"pullRequest": {
            "number": pull["number"], "autoMergeRequest": {"enabledAt": "2026-01-05T10:00:00Z"}}}}}


# --- Azure Repos -------------------------------------------------------------------------------

@dataclass
class AzureReposState:
    organization: str = "contoso"
    project: str = "ai-app"
    repo: str = "environments"
    token: str = "azdo-test-token"
    identity_id: str = "d6245f20-2af8-44f4-9451-8107cb2767db"
    race_on_create: bool = False
    pulls: list[dict[str, Any]] = field(default_factory=list)
    threads: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)   # pull request id -> statuses


AZURE_STATUS_STATES = ("error", "failed", "notApplicable", "notSet", "pending", "succeeded", "partiallySucceeded")
AZURE_MERGE_STRATEGIES = ("noFastForward", "squash", "rebase", "rebaseMerge")


class FakeAzureRepos:
    """Azure DevOps Git pull request endpoints (api-version 7.1), organization under /{org}/."""

    def __init__(self, state: AzureReposState | None = None) -> None:
        self.state = state or AzureReposState()
        self.server = FakeServer(self.handle)

    @property
    def collection_uri(self) -> str:
        return f"{self.server.url}/{self.state.organization}/"

    def _new_pull(self, title: str, description: str, source: str, target: str) -> dict[str, Any]:
        number = len(self.state.pulls) + 1
        repo_url = f"{self.server.url}/{self.state.organization}/{self.state.project}/_git/{self.state.repo}"
        pull = {
            "pullRequestId": number,
            "codeReviewId": number,
            "status": "active",
            "title": title,
            "description": description,
            "sourceRefName": source,
            "targetRefName": target,
            "createdBy": {"id": self.state.identity_id, "displayName": "Project Collection Build Service"},
            "creationDate": "2026-01-05T10:00:00Z",
            "url": f"{self.server.url}/{self.state.organization}/_apis/git/repositories/r1/pullRequests/{number}",
            "repository": {"id": "r1", "name": self.state.repo, "webUrl": repo_url,
                           "project": {"name": self.state.project}},
            "autoCompleteSetBy": None,
            "completionOptions": None,
        }
        self.state.pulls.append(pull)
        return pull

    def handle(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f":{self.state.token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return 401, {"$id": "1", "innerException": None,
                         "message": "TF400813: The user '' is not authorized to access this resource.",
                         "typeName": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException",
                         "errorCode": 0}
        if "api-version" not in request.query:
            return 400, {"message": "VS800006: No api-version was supplied for the request. The version "
                                    "must be supplied either as part of the Accept header or as a query parameter"}
        if request.query["api-version"] != "7.1":
            return self.server.violation(f"api-version {request.query['api-version']!r}")
        prefix = f"/{self.state.organization}/{self.state.project}/_apis/git/repositories/"
        if not request.path.startswith(prefix):
            return 404, {"message": "VS800075: The project with id 'x' does not exist, or you do not "
                                    "have permission to access it."}
        repo, _, rest = request.path[len(prefix):].partition("/")
        if repo != self.state.repo:
            return 404, {"message": f"TF401019: The Git repository with name or identifier {repo} does not "
                                    "exist or you do not have permissions for the operation you are attempting."}
        parts = rest.lower().split("/")
        if parts == ["pullrequests"] and request.method == "GET":
            return self._search(request)
        if parts == ["pullrequests"] and request.method == "POST":
            return self._create(request)
        pull = next((p for p in self.state.pulls if len(parts) > 1 and str(p["pullRequestId"]) == parts[1]), None)
        if parts[0] != "pullrequests" or pull is None:
            return 404, {"message": "TF401180: The requested pull request was not found."}
        if len(parts) == 2 and request.method == "PATCH":
            return self._update(request, pull)
        if parts[2:] == ["statuses"] and request.method == "GET":
            statuses = self.state.statuses.get(pull["pullRequestId"], [])
            return 200, {"value": statuses, "count": len(statuses)}
        if parts[2:] == ["statuses"] and request.method == "POST":
            return self._post_status(request, pull)
        if parts[2:] == ["threads"] and request.method == "GET":
            threads = self.state.threads.get(pull["pullRequestId"], [])
            return 200, {"value": threads, "count": len(threads)}
        if parts[2:] == ["threads"] and request.method == "POST":
            body = request.body or {}
            comments = body.get("comments") or []
            if not comments or not all(c.get("content") for c in comments):
                return self.server.violation("thread without comment content")
            threads = self.state.threads.setdefault(pull["pullRequestId"], [])
            thread = {"id": len(threads) + 1, "status": body.get("status"),
                      "comments": [{"id": i + 1, **c} for i, c in enumerate(comments)]}
            threads.append(thread)
            return 200, thread
        return 404, {"message": "not found"}

    def _search(self, request: Request) -> Reply:
        source = request.query.get("searchCriteria.sourceRefName", "")
        target = request.query.get("searchCriteria.targetRefName")
        if not source.startswith("refs/heads/") or (target is not None and not target.startswith("refs/heads/")):
            return self.server.violation(f"search by {source!r} / {target!r}: refs must be refs/heads/...")
        status = request.query.get("searchCriteria.status", "active")
        found = [p for p in self.state.pulls
                 if p["sourceRefName"] == source and (target is None or p["targetRefName"] == target)
                 and (status == "all" or p["status"] == status)]
        return 200, {"value": found, "count": len(found)}

    def _create(self, request: Request) -> Reply:
        body = request.body or {}
        for key in ("sourceRefName", "targetRefName", "title"):
            if not body.get(key):
                return self.server.violation(f"create pull request without {key}")
        if not body["sourceRefName"].startswith("refs/heads/") or not body["targetRefName"].startswith("refs/heads/"):
            return self.server.violation("sourceRefName/targetRefName must be refs/heads/...")
        if len(body.get("description") or "") > 4000:
            return 400, {"message": "TF401183: The pull request description is too long: the maximum "
                                    "length is 4000 characters."}
        if self.state.race_on_create:
            self.state.race_on_create = False
            self._new_pull("opened by another run", "", body["sourceRefName"], body["targetRefName"])
        if any(p["status"] == "active" and p["sourceRefName"] == body["sourceRefName"]
               and p["targetRefName"] == body["targetRefName"] for p in self.state.pulls):
            return 409, {"$id": "1", "message": "TF401179: An active pull request for the source and target "
                                                "branch already exists.",
                         "typeName": "Microsoft.TeamFoundation.Git.Server.GitPullRequestExistsException"}
        return 201, self._new_pull(body["title"], body.get("description") or "",
                                   body["sourceRefName"], body["targetRefName"])

    def _post_status(self, request: Request, pull: dict[str, Any]) -> Reply:
        body = request.body or {}
        context = body.get("context")
        if not isinstance(context, dict) or not context.get("name"):
            return self.server.violation("status without context.name (the only required field)")
        if set(context) - {"name", "genre"}:
            return self.server.violation(f"status context fields {sorted(context)}")
        if body.get("state") not in AZURE_STATUS_STATES:
            return self.server.violation(f"status state {body.get('state')!r} is not a GitStatusState")
        if set(body) - {"state", "description", "context", "targetUrl", "iterationId", "properties"}:
            return self.server.violation(f"status fields {sorted(body)}")
        statuses = self.state.statuses.setdefault(pull["pullRequestId"], [])
        status = {"id": len(statuses) + 1, "state": body["state"], "description": body.get("description"),
                  "context": dict(context), "createdBy": {"id": self.state.identity_id}}
        statuses.append(status)
        return 200, status

    def current_statuses(self, pull_id: int) -> dict[str, dict[str, Any]]:
        """"genre/name" -> its latest status on the pull request."""
        latest: dict[str, dict[str, Any]] = {}
        for status in self.state.statuses.get(pull_id, []):
            latest[f"{status['context'].get('genre') or ''}/{status['context']['name']}"] = status
        return latest

    def _update(self, request: Request, pull: dict[str, Any]) -> Reply:
        body = request.body or {}
        allowed = {"title", "description", "status", "autoCompleteSetBy", "completionOptions",
                   "mergeOptions", "targetRefName", "lastMergeSourceCommit"}
        if set(body) - allowed:
            return self.server.violation(f"PATCH pull request fields {sorted(set(body) - allowed)}")
        if len(body.get("description") or "") > 4000:
            return 400, {"message": "TF401183: The pull request description is too long: the maximum "
                                    "length is 4000 characters."}
        if "autoCompleteSetBy" in body:
            who = (body["autoCompleteSetBy"] or {}).get("id")
            if who != self.state.identity_id:
                return 400, {"message": f"TF401181: The identity {who} cannot set auto-complete."}
        if body.get("status") not in (None, "active", "abandoned", "completed"):
            return self.server.violation(f"pull request status {body.get('status')!r}")
        strategy = (body.get("completionOptions") or {}).get("mergeStrategy")
        if strategy is not None and strategy not in AZURE_MERGE_STRATEGIES:
            return self.server.violation(f"mergeStrategy {strategy!r}")
        if body.get("status") == "completed":
            # Completing needs the source commit the caller reviewed (lastMergeSourceCommit.commitId).
            commit = (body.get("lastMergeSourceCommit") or {}).get("commitId") or ""
            if len(commit) != 40:
                return self.server.violation("completion without lastMergeSourceCommit.commitId")
            if pull["status"] != "active":
                return 409, {"message": f"TF401181: The pull request {pull['pullRequestId']} is not active."}
        pull.update(body)
        return 200, pull


# --- Argo CD -----------------------------------------------------------------------------------

@dataclass
class ArgoCDState:
    token: str = "argocd-test-token"
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeArgoCD:
    """Argo CD API server: GET /api/v1/applications/{name} with a bearer token."""

    def __init__(self, state: ArgoCDState | None = None) -> None:
        self.state = state or ArgoCDState()
        self.server = FakeServer(self.handle)

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.state.token}":
            message = "invalid session: token signature is invalid"
            return 401, {"error": message, "code": 16, "message": message}
        prefix = "/api/v1/applications/"
        if request.method != "GET" or not request.path.startswith(prefix):
            return 404, {"error": "Not Found", "code": 5, "message": "Not Found"}
        name = request.path[len(prefix):]
        app = self.state.applications.get(name)
        if app is None:
            message = f'applications.argoproj.io "{name}" not found'
            return 404, {"error": message, "code": 5, "message": message}
        return 200, app
