"""The helper scripts the pipelines run (pipelines/scripts/)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.pipelines.azure_schema import REPO_ROOT

SCRIPTS = REPO_ROOT / "pipelines" / "scripts"
sys.path.insert(0, str(SCRIPTS))

import changed_environments  # noqa: E402
import model_watch  # noqa: E402
import post_pr_comment  # noqa: E402

PROMOTION = """\
apps:
  ai-app:
    values: "{env}/values.yaml"
    chart:
      path: ../charts/ai-app
environments:
  - name: dev
    namespace: ai-app-dev
    landing: push
  - name: staging
    namespace: ai-app-staging
    landing: pull-request
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def env_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "environments"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "promotion.yaml").write_text(PROMOTION)
    for env in ("dev", "staging"):
        (repo / env).mkdir()
        (repo / env / "values.yaml").write_text("image:\n  tag: a\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "init")
    git(repo, "checkout", "-q", "-b", "change")
    return repo


def commit(repo: Path, path: str, text: str) -> None:
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", f"change {path}")


def test_changed_environments_lists_only_touched_environments(env_repo: Path) -> None:
    commit(env_repo, "staging/values.yaml", "image:\n  tag: b\n")
    assert changed_environments.changed_environments(env_repo, "main") == ["staging"]


def test_changed_promotion_file_changes_every_environment(env_repo: Path) -> None:
    commit(env_repo, "promotion.yaml", PROMOTION + "# comment\n")
    assert changed_environments.changed_environments(env_repo, "main") == ["dev", "staging"]


def test_changed_environments_details_are_helm_template_arguments(env_repo: Path, capsys) -> None:
    commit(env_repo, "dev/values.yaml", "image:\n  tag: c\n")
    assert changed_environments.main(["--repo", str(env_repo), "--base", "main", "--details"]) == 0
    assert capsys.readouterr().out.split() == [
        "dev", "ai-app-dev", str(env_repo / "dev/values.yaml"), str(env_repo / "../charts/ai-app"),
    ]


def test_changed_environments_reports_an_unknown_base(env_repo: Path) -> None:
    with pytest.raises(SystemExit, match=r"git diff no-such-branch\.\.\.HEAD"):
        changed_environments.changed_environments(env_repo, "no-such-branch")


class ThreadsApi(BaseHTTPRequestHandler):
    """The shape of Azure Repos' 'Pull Request Threads - Create' (api-version 7.1)."""

    received: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != "Bearer job-token":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"message":"TF400813: not authorized"}')
            return
        payload = json.dumps({"id": 42, "comments": body["comments"], "status": body["status"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def threads_api() -> Iterator[str]:
    ThreadsApi.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ThreadsApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/org/"
    server.shutdown()
    server.server_close()


def pipeline_env(monkeypatch: pytest.MonkeyPatch, collection: str, token: str) -> None:
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", collection)
    monkeypatch.setenv("SYSTEM_TEAMPROJECT", "My Project")
    monkeypatch.setenv("SYSTEM_PULLREQUEST_PULLREQUESTID", "17")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", token)


def test_post_pr_comment_creates_a_thread(threads_api: str, tmp_path: Path, monkeypatch, capsys) -> None:
    pipeline_env(monkeypatch, threads_api, "job-token")
    diff = tmp_path / "diff.md"
    diff.write_text("## envbot\n```diff\n-a\n+b\n```\n")
    assert post_pr_comment.main(["--file", str(diff), "--repository", "ai-app-environments"]) == 0
    (request,) = ThreadsApi.received
    assert request["path"] == (
        "/org/My%20Project/_apis/git/repositories/ai-app-environments/pullRequests/17/threads?api-version=7.1"
    )
    assert request["body"]["comments"][0]["content"] == diff.read_text()
    assert "posted thread 42 on pull request 17" in capsys.readouterr().out


def test_post_pr_comment_fails_clearly_when_refused(threads_api: str, tmp_path: Path, monkeypatch, capsys) -> None:
    pipeline_env(monkeypatch, threads_api, "wrong-token")
    diff = tmp_path / "diff.md"
    diff.write_text("text")
    assert post_pr_comment.main(["--file", str(diff), "--repository", "r"]) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_post_pr_comment_requires_the_mapped_token(tmp_path: Path, monkeypatch) -> None:
    pipeline_env(monkeypatch, "http://127.0.0.1:9/org/", "")
    diff = tmp_path / "diff.md"
    diff.write_text("text")
    with pytest.raises(SystemExit, match="SYSTEM_ACCESSTOKEN is not set"):
        post_pr_comment.main(["--file", str(diff), "--repository", "r"])


def test_post_pr_comment_truncates_oversized_diffs() -> None:
    body = post_pr_comment.thread_body("x" * (post_pr_comment.MAX_COMMENT_CHARS + 10))
    content = body["comments"][0]["content"]
    assert len(content) == post_pr_comment.MAX_COMMENT_CHARS and content.endswith("pipeline log)*")


def test_versions_compare_naturally() -> None:
    assert sorted(["10", "9", "2"], key=model_watch.version_key) == ["2", "9", "10"]
    assert model_watch.version_key("2024-06-01") > model_watch.version_key("2024-05-31")


def test_model_watch_finds_a_newer_published_version(azurite, tmp_path: Path, monkeypatch) -> None:
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"models-watch-{tmp_path.name[-8:].lower().replace('_', '-')}")
    for version in ("1", "2", "10"):
        container.upload_blob(f"iris-logreg/{version}/model.onnx", b"onnx", metadata={"sha256": "0" * 64})
    container.upload_blob("iris-logreg/11/notes.txt", b"not a model")
    container.upload_blob("iris-forest/99/model.onnx", b"other model")
    base = f"{azurite.blob_endpoint}/{container.container_name}/iris-logreg"
    values = tmp_path / "values.yaml"

    values.write_text(f"model:\n  source: blob\n  name: iris-logreg\n  version: '2'\n  uri: {base}/2/model.onnx\n")
    assert model_watch.newer_model_uri(values) == f"{base}/10/model.onnx"

    values.write_text(f"model:\n  name: iris-logreg\n  version: '10'\n  uri: {base}/10/model.onnx\n")
    assert model_watch.newer_model_uri(values) is None


def test_model_watch_names_a_missing_field(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("model:\n  name: iris-logreg\n")
    with pytest.raises(SystemExit, match=r"values.yaml: model.uri is missing"):
        model_watch.newer_model_uri(values)
