"""envbot promote and status against Argo CD, and promotions landing as pull requests on GitHub / Azure Repos.

The real CLI runs in a subprocess against the environments repo on a bare remote, the TLS registry
and Azurite; Argo CD, GitHub and Azure Repos are the local servers of tests/bot/fakeservers.py.
A forge remote URL (https://github.com/..., https://dev.azure.com/...) reaches the local bare
repository through git's own `url.<base>.insteadOf` rewrite, so clone and push are real git and
the pull request is opened on the fake forge: the whole promotion runs end to end.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.forges.azure_repos import FULL_TEXT_HEADING
from bot.values import ImagePin, edit_pin_text
from tests.bot.envrepo import EnvRepo, git, run_envbot
from tests.bot.fakeservers import AzureReposState, FakeArgoCD, FakeAzureRepos, FakeGitHub, GitHubState
from tests.bot.test_argocd import CHART_COMMIT, NEWER, OLDER, application, serve

pytestmark = pytest.mark.docker
PROD = "environments/prod/values.yaml"
STAGING = "environments/staging/values.yaml"
PROD_BRANCH = "envbot/promote-ai-app-prod"
GITHUB_REMOTE = "https://github.com/contoso/environments.git"
AZURE_REMOTE = "https://contoso@dev.azure.com/contoso/ai-app/_git/environments"


def image_pin(text: str) -> dict:
    return YAML(typ="safe").load(text)["image"]


def branches(repo: EnvRepo) -> list[str]:
    return git(repo.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def running(name: str, deployed: str, deployed_ago: timedelta, **status: Any) -> dict[str, Any]:
    """Application NAME whose last deployment was environments commit DEPLOYED, DEPLOYED_AGO before now."""
    status.setdefault("env_commit", deployed)
    return application(name, history=[(deployed, datetime.now(UTC) - deployed_ago)], **status)


@pytest.fixture
def argocd(bot_env: dict[str, str]) -> Iterator[FakeArgoCD]:
    fake = FakeArgoCD()
    fake.server.start()
    bot_env |= {"ARGOCD_SERVER": fake.server.url, "ARGOCD_AUTH_TOKEN": fake.state.token}
    yield fake
    fake.server.stop()
    assert fake.server.violations == []


# --- Argo CD promotion gate --------------------------------------------------------------------

def test_synced_healthy_soaked_source_promotes(env_repo, images, bot_env, argocd):
    # staging's pin was set by the initial commit; a later dev update moved staging's sync revision
    # without deploying anything there (Argo CD reports the new tip, its history the pinned commit).
    pinned = env_repo.head()
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", str(env_repo.remote), env=bot_env)
    serve(argocd, running("ai-app-staging", pinned, timedelta(hours=2), env_commit=env_repo.head()))

    proc = run_envbot("promote", "staging", "prod", "--repo", str(env_repo.remote), "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert result["gates"] == []
    assert result["from"] == f"staging@{pinned}"
    assert result["landed"] == "branch"
    assert image_pin(env_repo.show(PROD, PROD_BRANCH))["digest"] == images["v2"].digest
    assert f"Envbot-From: staging@{pinned}" in env_repo.message(PROD_BRANCH)
    asked = [r for r in argocd.server.requests if r.path == "/api/v1/applications/ai-app-staging"]
    assert asked and asked[0].headers["authorization"] == f"Bearer {argocd.state.token}"


REFUSALS: dict[str, tuple[Callable[[str], dict[str, Any]], Callable[[str], list[str]]]] = {
    "degraded": (
        lambda pinned: running("ai-app-staging", pinned, timedelta(hours=2), health="Degraded",
                               health_message='Deployment "ai-app" exceeded its progress deadline'),
        lambda pinned: ["argo cd: ai-app-staging is Degraded, not Healthy",
                        'Deployment "ai-app" exceeded its progress deadline'],
    ),
    "out-of-sync": (
        lambda pinned: running("ai-app-staging", pinned, timedelta(hours=2), sync="OutOfSync", env_commit=NEWER),
        lambda pinned: [f"argo cd: ai-app-staging is OutOfSync (target {CHART_COMMIT[:12]}, {NEWER[:12]}), "
                        f"not Synced at {pinned[:12]}"],
    ),
    "other-revision": (
        lambda pinned: running("ai-app-staging", OLDER, timedelta(days=3)),
        lambda pinned: [f"argo cd: ai-app-staging runs another revision ({CHART_COMMIT[:12]}, {OLDER[:12]}), "
                        f"not {pinned[:12]}"],
    ),
    "still-soaking": (
        # git history says staging's pin landed long ago, but Argo CD deployed it only minutes ago.
        lambda pinned: running("ai-app-staging", pinned, timedelta(minutes=10)),
        lambda pinned: [f"argo cd: ai-app-staging has run {pinned[:12]} Healthy for ", " of 1h: ", " left (since "],
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_gate_refuses_and_leaves_the_remote_alone(case, env_repo, images, bot_env, argocd):
    build, expected = REFUSALS[case]
    pinned = env_repo.head()
    serve(argocd, build(pinned))

    proc = run_envbot("promote", "staging", "prod", "--repo", str(env_repo.remote), env=bot_env, check=False)
    assert "promotion staging -> prod blocked:" in proc.stderr
    for fragment in expected(pinned):
        assert fragment in proc.stderr
    assert "--override-reason TEXT bypasses the gates" in proc.stderr
    assert env_repo.head() == pinned and env_repo.count() == 1
    assert branches(env_repo) == ["main"]


def test_unreachable_or_unconfigured_argo_cd_refuses(env_repo, images, bot_env):
    with socket.socket() as sock:   # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        unreachable = bot_env | {"ARGOCD_SERVER": url, "ARGOCD_AUTH_TOKEN": "t"}
        proc = run_envbot("promote", "staging", "prod", "--repo", str(env_repo.remote), env=unreachable,
                          check=False)
    assert f"argo cd: cannot check ai-app-staging: Argo CD server {url} is unreachable" in proc.stderr

    no_token = bot_env | {"ARGOCD_SERVER": "argocd.contoso.example"}
    proc = run_envbot("promote", "staging", "prod", "--repo", str(env_repo.remote), env=no_token, check=False)
    assert "ARGOCD_SERVER is set (argocd.contoso.example) but ARGOCD_AUTH_TOKEN is not" in proc.stderr
    assert env_repo.count() == 1 and branches(env_repo) == ["main"]


def test_override_reason_bypasses_argo_cd_and_is_recorded(env_repo, images, bot_env, argocd):
    pinned = env_repo.head()
    serve(argocd, running("ai-app-staging", pinned, timedelta(hours=2), health="Degraded"))
    reason = "roll forward the fix for incident 7"

    proc = run_envbot("promote", "staging", "prod", "--override-reason", reason, "--repo", str(env_repo.remote),
                      "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert result["gates"] == ["argo cd: ai-app-staging is Degraded, not Healthy"]
    assert result["override"] == reason
    assert "envbot: override: argo cd: ai-app-staging is Degraded" in proc.stderr
    message = env_repo.message(PROD_BRANCH)
    assert f"Envbot-Override: {reason}" in message
    assert f"Envbot-From: staging@{pinned}" in message
    assert f"`Envbot-Override: {reason}`" in result["description"]
    assert image_pin(env_repo.show(PROD, PROD_BRANCH))["digest"] == images["v2"].digest
    assert env_repo.count() == 1   # pull-request landing: main moves only when the branch is merged


# --- envbot status with Argo CD ----------------------------------------------------------------

def test_status_shows_sync_and_health_per_environment(env_repo, images, bot_env, argocd):
    pinned = env_repo.head()
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", str(env_repo.remote), env=bot_env)
    serve(argocd, running("ai-app-dev", env_repo.head(), timedelta(minutes=5)))
    serve(argocd, running("ai-app-staging", pinned, timedelta(hours=1), sync="OutOfSync", health="Progressing",
                          env_commit=env_repo.head()))
    # No ai-app-prod Application: status says so in the row instead of failing.

    table = run_envbot("status", "--repo", str(env_repo.remote), env=bot_env).stdout
    header, *rows = table.splitlines()[1:]
    assert header.split()[-2:] == ["SYNC", "HEALTH"]
    sync_at, health_at = header.index("SYNC"), header.index("HEALTH")
    columns = {row.split()[0]: (row[sync_at:health_at].strip(), row[health_at:].strip()) for row in rows}
    assert columns == {"dev": ("Synced", "Healthy"), "staging": ("OutOfSync", "Progressing"),
                       "prod": ("?", "Argo CD has no Application 'ai-app-prod'")}

    data = json.loads(run_envbot("status", "--repo", str(env_repo.remote), "--json", env=bot_env).stdout)
    states = {row["env"]: (row["sync"], row["health"]) for row in data["environments"]}
    assert states["dev"] == ("Synced", "Healthy")
    assert states["staging"] == ("OutOfSync", "Progressing")
    assert states["prod"][0] == "?"


def test_status_without_argo_cd_has_no_sync_columns(env_repo, bot_env):
    table = run_envbot("status", "--repo", str(env_repo.remote), env=bot_env).stdout
    assert "SYNC" not in table and "HEALTH" not in table
    data = json.loads(run_envbot("status", "--repo", str(env_repo.remote), "--json", env=bot_env).stdout)
    assert all("sync" not in row for row in data["environments"])


# --- landing through a forge -------------------------------------------------------------------

def serve_remote_as(bot_env: dict[str, str], forge_url: str, repo: EnvRepo) -> None:
    """git in envbot's environment reaches FORGE_URL at the local bare repository (url.<base>.insteadOf)."""
    Path(bot_env["HOME"], ".gitconfig").write_text(f'[url "{repo.remote.as_uri()}"]\n\tinsteadOf = {forge_url}\n')


def move_staging_to(repo: EnvRepo, initial_pins, image) -> None:
    """A reviewed change of staging's pin, merged long ago: its soak is over."""
    path = repo.work / STAGING
    pin = replace(initial_pins["staging"], image=ImagePin(image.name, image.tag, image.digest))
    path.write_text(edit_pin_text(path.read_text(), pin, "staging/values.yaml"))
    repo.commit_as_human("staging: run v3", date="2024-02-01T12:00:00+00:00")


def promote(remote: str, bot_env: dict[str, str]) -> dict[str, Any]:
    return json.loads(run_envbot("promote", "staging", "prod", "--repo", remote, "--json", env=bot_env).stdout)


def check_description(description: str, images, source_repo) -> None:
    # What changes (old -> new), the source commits between prod's image (v1) and staging's, the rendered diff.
    assert f"| `image.digest` | `{images['v1'].digest}` |" in description
    assert "### Source changes" in description
    for index in (1, 2):
        assert source_repo.commits[index][:12] in description and source_repo.subjects[index] in description
    assert "### Rendered manifests (helm template)" in description
    assert "Deployment/ai-app" in description


@pytest.fixture
def github(bot_env: dict[str, str]) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(GitHubState(owner="contoso", repo="environments"))
    fake.server.start()
    bot_env |= {"GITHUB_API_URL": fake.server.url, "GITHUB_TOKEN": fake.state.token}
    yield fake
    fake.server.stop()
    assert fake.server.violations == []


@pytest.fixture
def azure_repos(bot_env: dict[str, str]) -> Iterator[FakeAzureRepos]:
    fake = FakeAzureRepos(AzureReposState(organization="contoso", project="ai-app", repo="environments"))
    fake.server.start()
    bot_env |= {"SYSTEM_COLLECTIONURI": fake.collection_uri, "SYSTEM_ACCESSTOKEN": fake.state.token}
    yield fake
    fake.server.stop()
    assert fake.server.violations == []


def test_promotion_opens_then_updates_a_github_pull_request(env_repo, images, initial_pins, source_repo,
                                                            bot_env, github):
    serve_remote_as(bot_env, GITHUB_REMOTE, env_repo)
    first = promote(GITHUB_REMOTE, bot_env)
    assert first["landed"] == "pull-request"
    assert first["pull_request"] == "https://github.com/contoso/environments/pull/1"
    [pull] = github.state.pulls
    assert pull["title"] == "envbot: promote ai-app staging -> prod (v2)"
    assert (pull["head"]["ref"], pull["base"]["ref"]) == (PROD_BRANCH, "main")
    assert pull["body"] == first["description"]
    check_description(pull["body"], images, source_repo)
    # The branch the pull request merges is on the remote; main waits for the merge.
    assert env_repo.head(PROD_BRANCH) == first["commit"]
    assert env_repo.count() == 1

    move_staging_to(env_repo, initial_pins, images["v3"])
    second = promote(GITHUB_REMOTE, bot_env)
    assert second["pull_request"] == first["pull_request"]
    [pull] = github.state.pulls
    assert pull["title"] == "envbot: promote ai-app staging -> prod (v3)"
    assert pull["body"] == second["description"]
    assert f"`{images['v3'].digest}`" in pull["body"]
    assert source_repo.subjects[4] in pull["body"]   # v3 was built from source commit 4
    assert env_repo.head(PROD_BRANCH) == second["commit"] != first["commit"]
    assert [r.method for r in github.server.requests if r.path.endswith("/pulls") or "/pulls/" in r.path] == [
        "GET", "POST", "GET", "PATCH"]


def test_promotion_opens_then_updates_an_azure_repos_pull_request(env_repo, images, initial_pins, source_repo,
                                                                  bot_env, azure_repos):
    serve_remote_as(bot_env, AZURE_REMOTE, env_repo)
    first = promote(AZURE_REMOTE, bot_env)
    assert first["landed"] == "pull-request"
    assert first["pull_request"].endswith("/contoso/ai-app/_git/environments/pullrequest/1")
    [pull] = azure_repos.state.pulls
    assert pull["title"] == "envbot: promote ai-app staging -> prod (v2)"
    assert (pull["sourceRefName"], pull["targetRefName"]) == (f"refs/heads/{PROD_BRANCH}", "refs/heads/main")
    check_description(first["description"], images, source_repo)
    # The rendered diff makes the description longer than Azure Repos' 4000 characters: the pull
    # request shows its start, and the full text is recorded as a (closed) comment thread.
    assert len(first["description"]) > 4000
    assert pull["description"].startswith(first["description"][:1000])
    assert "**Truncated**" in pull["description"] and len(pull["description"]) <= 4000
    assert [t["comments"][0]["content"] for t in azure_repos.state.threads[1]] == [
        FULL_TEXT_HEADING + first["description"]]
    assert env_repo.head(PROD_BRANCH) == first["commit"]
    assert env_repo.count() == 1

    move_staging_to(env_repo, initial_pins, images["v3"])
    second = promote(AZURE_REMOTE, bot_env)
    assert second["pull_request"] == first["pull_request"]
    [pull] = azure_repos.state.pulls
    assert pull["title"] == "envbot: promote ai-app staging -> prod (v3)"
    assert pull["description"].startswith(second["description"][:1000])
    assert f"`{images['v3'].digest}`" in pull["description"]
    assert [t["comments"][0]["content"] for t in azure_repos.state.threads[1]] == [
        FULL_TEXT_HEADING + first["description"], FULL_TEXT_HEADING + second["description"]]
    assert env_repo.head(PROD_BRANCH) == second["commit"] != first["commit"]
    creates = [r for r in azure_repos.server.requests if r.method == "POST" and r.path.endswith("/pullrequests")]
    assert len(creates) == 1


def test_promotion_from_a_checkout_pushes_the_branch_to_its_forge(tmp_path, env_repo, images, bot_env, github):
    # A developer's checkout of the GitHub repository: the pull request is opened on GitHub, so the
    # branch it merges must go to GitHub (origin), not into the checkout.
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(env_repo.remote), str(checkout))
    git(checkout, "remote", "set-url", "origin", GITHUB_REMOTE)
    Path(bot_env["HOME"], ".gitconfig").write_text(
        f'[url "{env_repo.remote.as_uri()}"]\n\tpushInsteadOf = {GITHUB_REMOTE}\n')   # get-url keeps GitHub's
    result = promote(str(checkout), bot_env)
    assert result["landed"] == "pull-request"
    [pull] = github.state.pulls
    assert (pull["head"]["ref"], pull["base"]["ref"]) == (PROD_BRANCH, "main")
    assert env_repo.head(PROD_BRANCH) == result["commit"]
    assert git(checkout, "branch", "--list", "envbot/*") == ""
    assert git(checkout, "rev-parse", "HEAD") == env_repo.head()
