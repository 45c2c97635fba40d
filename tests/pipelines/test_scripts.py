"""The helper scripts the pipelines run (pipelines/scripts/)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.pipelines.azure_schema import REPO_ROOT

SCRIPTS = REPO_ROOT / "pipelines" / "scripts"
sys.path.insert(0, str(SCRIPTS))

import changed_environments  # noqa: E402
import model_info  # noqa: E402
import model_watch  # noqa: E402
import pinned_image  # noqa: E402
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


def test_changed_environments_in_the_nested_layout(tmp_path: Path) -> None:
    # The environments repo may keep everything under environments/ (as this repository does).
    repo = tmp_path / "repo"
    (repo / "environments").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "environments" / "promotion.yaml").write_text(PROMOTION)
    for env in ("dev", "staging"):
        (repo / "environments" / env).mkdir()
        (repo / "environments" / env / "values.yaml").write_text("image:\n  tag: a\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "init")
    git(repo, "checkout", "-q", "-b", "change")
    commit(repo, "environments/dev/values.yaml", "image:\n  tag: b\n")
    assert changed_environments.changed_environments(repo, "main") == ["dev"]
    commit(repo, "environments/promotion.yaml", PROMOTION + "# comment\n")
    assert changed_environments.changed_environments(repo, "main") == ["dev", "staging"]
    details = changed_environments.render_details(repo, ["dev"])
    values, chart = repo / "environments/dev/values.yaml", repo / "environments/../charts/ai-app"
    assert details == [f"dev ai-app-dev {values} {chart}"]


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


@pytest.fixture
def blob_models(azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh Azurite container holding iris-logreg 1, 2 and 10 (published with publish_model), a stray
    non-model blob under version 11, and another model; returns the container URL."""
    from azure.storage.blob import BlobServiceClient

    from app.modelstore import model_uri, publish_model

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"watch-{uuid.uuid4().hex[:12]}")
    store = f"{azurite.blob_endpoint}/{container.container_name}"
    model_file = tmp_path / "model.onnx"
    for version in ("1", "2", "10"):
        model_file.write_bytes(f"model version {version}".encode())
        publish_model(model_file, model_uri(store, "iris-logreg", version), with_card=False)
    container.upload_blob("iris-logreg/11/notes.txt", b"not a model")
    publish_model(model_file, model_uri(store, "iris-forest", "99"), with_card=False)
    return store


def test_model_watch_finds_a_newer_published_version(blob_models: str, tmp_path: Path, capsys) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(f"model:\n  source: blob\n  name: iris-logreg\n  version: '2'\n"
                      f"  uri: {blob_models}/iris-logreg/2/model.onnx\n")
    assert model_watch.main(["--values", str(values)]) == 0
    assert capsys.readouterr().out == f"{blob_models}/iris-logreg/10/model.onnx\n"

    values.write_text(f"model:\n  version: '10'\n  uri: {blob_models}/iris-logreg/10/model.onnx\n")
    assert model_watch.main(["--values", str(values)]) == 0
    assert capsys.readouterr().out == ""


def test_model_watch_reports_a_missing_container(blob_models: str, tmp_path: Path, capsys) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(f"model:\n  uri: {blob_models}-gone/iris-logreg/1/model.onnx\n")
    assert model_watch.main(["--values", str(values)]) == 1
    assert "values.yaml: model.uri:" in capsys.readouterr().err


def test_model_watch_names_a_missing_field(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("model:\n  name: iris-logreg\n")
    with pytest.raises(SystemExit, match=r"values.yaml: model.uri is missing"):
        model_watch.main(["--values", str(values)])


def test_model_info_prints_the_published_record(blob_models: str, capsys) -> None:
    from app.modelstore import stat_model

    uri = f"{blob_models}/iris-logreg/2/model.onnx"
    assert model_info.main([uri]) == 0
    name, version, sha256, size = capsys.readouterr().out.split()
    info = stat_model(uri)
    assert (name, version, sha256, int(size)) == ("iris-logreg", "2", info.sha256, len(b"model version 2"))
    assert model_info.main([f"{blob_models}/iris-logreg/3/model.onnx"]) == 1
    assert "iris-logreg/3/model.onnx" in capsys.readouterr().err


# --- the envbot template's script, run as the agent would ---------------------------------------------

TOKEN = "job-access-token"


def template_script(path: str, display_name: str) -> str:
    from tests.pipelines.azure_schema import load_yaml

    step = next(s for s in load_yaml(REPO_ROOT / path)["steps"] if s.get("displayName") == display_name)
    return step["inputs"]["inlineScript"]


@pytest.fixture
def pinned_env_repo(tmp_path: Path, base_image: str, oci_registry, blob_models: str, charts):
    """An environments repo whose dev pins an image in the TLS registry, iris-logreg 2 and chart build 1,
    served at Azure Repos' URL shape behind bearer auth."""
    from app.modelstore import stat_model
    from bot.values import ImagePin, ModelPin, ReleasePin
    from tests.bot.conftest import build_and_push
    from tests.bot.envrepo import make_env_repo
    from tests.pipelines.azure_repos_git import serve

    name = f"{oci_registry.host}/ai-app"
    digest = build_and_push(base_image, name, "pipelines", {"org.opencontainers.image.revision": "0" * 40})
    model = stat_model(f"{blob_models}/iris-logreg/2/model.onnx")
    pin = ReleasePin(ImagePin(name, "pipelines", digest), ModelPin("blob", model.name, model.version, model.uri,
                                                                  model.sha256), charts["1"])
    repo = make_env_repo(tmp_path, pins={"dev": pin})
    with serve(tmp_path, TOKEN) as server:
        yield repo, server, f"{name}@{digest}"


def run_envbot_update(server, env: dict[str, str], token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    script = template_script("pipelines/templates/envbot-update-dev.yml", "envbot update dev")
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, env={
        **base, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "IMAGE_REF": "", "MODEL_URI": "",
        "CHART_REF": "",
        "ENVIRONMENTS_REPOSITORY": "environments", "SCRIPTS_DIR": "pipelines/scripts",
        "COLLECTION_URI": server.collection_uri, "TEAM_PROJECT": server.project, "SYSTEM_ACCESSTOKEN": token,
        "ENVBOT_GIT_NAME": "envbot (Azure Pipelines)", "ENVBOT_GIT_EMAIL": "envbot@pipelines.invalid", **env,
    })


def test_model_only_release_pins_the_model_and_keeps_devs_image(pinned_env_repo, blob_models, oci_registry,
                                                                 azurite) -> None:
    repo, server, image = pinned_env_repo
    before = repo.head()
    new_model = f"{blob_models}/iris-logreg/10/model.onnx"
    proc = run_envbot_update(server, {"MODEL_URI": new_model, "REQUESTS_CA_BUNDLE": str(oci_registry.ca_file),
                                      "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"model-only release: dev keeps {image}" in proc.stdout
    assert repo.head() != before and server.refused == []
    dev = repo.show("environments/dev/values.yaml")
    assert f'digest: "{image.split("@")[1]}"' in dev and "uri: " + new_model in dev and 'version: "10"' in dev
    message = repo.message()
    assert "Envbot-Action: update" in message and f"Envbot-Image: {image}" in message


def test_ci_pins_the_chart_it_pushed_with_the_image(pinned_env_repo, charts, oci_registry) -> None:
    repo, server, image = pinned_env_repo
    proc = run_envbot_update(server, {"IMAGE_REF": image, "CHART_REF": charts["2"].ref,
                                      "REQUESTS_CA_BUNDLE": str(oci_registry.ca_file)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chart = repo.show("environments/dev/chart.yaml")
    assert f'tag: "{charts["2"].version}"' in chart and f'digest: "{charts["2"].digest}"' in chart
    assert f"Envbot-Chart: {charts['2'].label}" in repo.message()


def test_a_refused_token_pushes_nothing(pinned_env_repo, blob_models) -> None:
    repo, server, _ = pinned_env_repo
    before = repo.head()
    proc = run_envbot_update(server, {"MODEL_URI": f"{blob_models}/iris-logreg/10/model.onnx"}, token="wrong")
    assert proc.returncode != 0 and "envbot: error: cannot reach the environments repo" in proc.stderr
    assert repo.head() == before and server.refused
    assert "wrong" not in proc.stdout + proc.stderr


def test_an_image_not_pinned_by_digest_is_refused_before_envbot_runs(pinned_env_repo) -> None:
    repo, server, image = pinned_env_repo
    proc = run_envbot_update(server, {"IMAGE_REF": image.split("@")[0] + ":latest"})
    assert proc.returncode == 1 and "is not pinned by digest" in proc.stderr
    assert server.refused == [] and repo.count() == 1


def test_pinned_image_reads_envbot_status(tmp_path: Path, capsys, monkeypatch) -> None:
    from tests.bot.envrepo import make_env_repo

    repo = make_env_repo(tmp_path)
    status = subprocess.run([sys.executable, "-m", "bot.main", "status", "--repo", str(repo.remote), "--json"],
                            capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    dev = next(row for row in json.loads(status)["environments"] if row["env"] == "dev")
    monkeypatch.setattr(sys, "stdin", io.StringIO(status))
    assert pinned_image.main(["dev"]) == 0
    assert capsys.readouterr().out == f"{dev['image']['repository']}@{dev['image']['digest']}\n"
    with pytest.raises(SystemExit, match="no environment 'qa'"):
        pinned_image.pinned_image(json.loads(status), "qa")


@pytest.mark.docker
def test_render_details_give_each_environment_its_pinned_chart(env_repo: Path, charts, oci_registry, helm_bin,
                                                                monkeypatch, tmp_path: Path) -> None:
    from bot.values import edit_chart_pin_text

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oci_registry.ca_file))
    monkeypatch.setenv("ENVBOT_HELM", helm_bin)
    monkeypatch.setenv("ENVBOT_CACHE_DIR", str(tmp_path / "cache"))
    template = (REPO_ROOT / "environments" / "dev" / "chart.yaml").read_text()
    for env, build in (("dev", "2"), ("staging", "1")):
        (env_repo / env / "chart.yaml").write_text(edit_chart_pin_text(template, charts[build], "chart.yaml"))
    commit(env_repo, "dev/values.yaml", "image:\n  tag: b\n")
    details = changed_environments.render_details(env_repo, ["dev", "staging"])
    charts_used = {line.split()[0]: Path(line.split()[3]) for line in details}
    # Each environment renders the package of the chart it pins, pulled by digest: not the repo's chart path.
    assert charts_used["dev"].name == f"{charts['2'].digest.split(':')[1]}.tgz"
    assert charts_used["staging"].name == f"{charts['1'].digest.split(':')[1]}.tgz"
    rendered = subprocess.run([helm_bin, "template", "ai-app", str(charts_used["dev"]), "--set",
                               "image.repository=r.example/ai-app", "--set", "image.tag=x"],
                              capture_output=True, text=True, check=True).stdout
    assert 'ai-app.io/chart-change: "2"' in rendered
    (env_repo / "staging" / "chart.yaml").write_text(
        (env_repo / "staging" / "chart.yaml").read_text().replace(charts["1"].digest, "sha256:" + "0" * 64))
    with pytest.raises(SystemExit, match=r"staging/chart.yaml: cannot pull chart .*not found"):
        changed_environments.render_details(env_repo, ["staging"])
