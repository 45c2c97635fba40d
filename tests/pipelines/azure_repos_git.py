"""An Azure Repos stand-in for git over HTTP: smart HTTP served by `git http-backend`, repositories at
Azure Repos' URL shape `{collection}{project}/_git/{repository}`, and every request refused with 401
unless it carries `Authorization: bearer <token>`, the header the job's access token travels in.

Job tokens can be scoped (`grant`): with "Protect access to repositories in YAML pipelines" (on by default
for organizations created after May 2020) a job's token reaches only the repositories the job references
(its checkout steps and `uses: repositories:`); any other repository answers like Azure Repos does, with
TF401019 ("does not exist or you do not have permissions"), whether or not it exists.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

COLLECTION_PATH = "/org/"


@dataclass
class AzureReposGit:
    collection_uri: str   # what SYSTEM_COLLECTIONURI holds, e.g. http://127.0.0.1:PORT/org/
    project: str
    root: Path            # bare repositories live here as <name>.git
    token: str
    refused: list[str]    # paths of requests refused for a missing or wrong token
    # Scoped job tokens: token -> names of the repositories it may read and push. The `token` above
    # reaches every repository (the "collection scope" of an organization without the protection).
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)
    pushes: list[tuple[str, str]] = field(default_factory=list)   # (repository, token) of each push
    threads: list[dict] = field(default_factory=list)   # pull request threads created through the REST API

    def url(self, repository: str) -> str:
        return f"{self.collection_uri}{quote(self.project)}/_git/{quote(repository)}"

    def grant(self, token: str, repositories: set[str]) -> None:
        self.scopes[token] = frozenset(repositories)

    def revoke(self, token: str) -> None:
        self.scopes.pop(token, None)


def _handler(server_state: AzureReposGit) -> type[BaseHTTPRequestHandler]:
    class GitHttp(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            presented = self.headers.get("Authorization", "")
            token = presented[len("bearer "):] if presented.lower().startswith("bearer ") else ""
            if token != server_state.token and token not in server_state.scopes:
                server_state.refused.append(parts.path)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="azure-repos"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            api = f"{COLLECTION_PATH}{quote(server_state.project)}/_apis/git/repositories/"
            if parts.path.startswith(api) and self.command == "POST":
                self._create_thread(unquote(parts.path[len(api):]), token)
                return
            prefix = f"{COLLECTION_PATH}{quote(server_state.project)}/_git/"
            if not parts.path.startswith(prefix):
                self.send_error(404)
                return
            # /_git/<repo>/info/refs -> <root>/<repo>.git/info/refs for http-backend.
            repository, _, rest = unquote(parts.path[len(prefix):]).partition("/")
            scope = server_state.scopes.get(token)
            if scope is not None and repository not in scope:
                server_state.refused.append(parts.path)
                message = (f"TF401019: The Git repository with name or identifier {repository} does not exist "
                           "or you do not have permissions for the operation you are attempting.").encode()
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            if rest.startswith("git-receive-pack"):
                server_state.pushes.append((repository, token))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "GIT_PROJECT_ROOT": str(server_state.root), "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": f"/{repository}.git/{rest}", "REQUEST_METHOD": self.command,
                "QUERY_STRING": parts.query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "build-service", "REMOTE_ADDR": "127.0.0.1",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _create_thread(self, rest: str, token: str) -> None:
            """Azure Repos' "Pull Request Threads - Create": .../repositories/{repo}/pullRequests/{id}/threads."""
            repository, _, tail = rest.partition("/pullRequests/")
            pull_request, _, what = tail.partition("/")
            scope = server_state.scopes.get(token)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if what != "threads" or not pull_request.isdigit() or (scope is not None and repository not in scope):
                self.send_error(404)
                return
            server_state.threads.append({"repository": repository, "pull_request": int(pull_request), "body": body})
            payload = json.dumps({"id": len(server_state.threads), **body}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return GitHttp


@contextmanager
def serve(root: Path, token: str, project: str = "My Project") -> Iterator[AzureReposGit]:
    """Serve the bare repositories under ROOT on 127.0.0.1 until the block ends."""
    state = AzureReposGit("", project, root, token, [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.collection_uri = f"http://127.0.0.1:{server.server_port}{COLLECTION_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
