"""bot.forges against local servers implementing the GitHub and Azure Repos pull request APIs."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from bot.forges import (
    AzureReposRepo,
    ForgeError,
    GitHubRepo,
    PullRequest,
    open_or_update_pull_request,
    parse_remote,
)
from bot.forges.azure_repos import FULL_TEXT_HEADING
from tests.bot.fakeservers import AzureReposState, FakeAzureRepos, FakeGitHub, GitHubState

FORGE_VARIABLES = ("GITHUB_TOKEN", "GITHUB_API_URL", "GITHUB_GRAPHQL_URL", "GITHUB_SERVER_URL",
                   "SYSTEM_ACCESSTOKEN", "AZURE_DEVOPS_EXT_PAT", "SYSTEM_COLLECTIONURI")
GITHUB_REMOTE = "https://github.com/contoso/environments.git"
AZURE_REMOTE = "https://contoso@dev.azure.com/contoso/ai-app/_git/environments"


@pytest.fixture(autouse=True)
def clean_forge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FORGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(GitHubState())
    fake.server.start()
    monkeypatch.setenv("GITHUB_API_URL", fake.server.url)
    monkeypatch.setenv("GITHUB_TOKEN", fake.state.token)
    yield fake
    fake.server.stop()
    assert fake.server.violations == []


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureRepos]:
    fake = FakeAzureRepos(AzureReposState())
    fake.server.start()
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", fake.collection_uri)
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", fake.state.token)
    yield fake
    fake.server.stop()
    assert fake.server.violations == []


# --- remote URLs -------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/contoso/environments", GitHubRepo("contoso", "environments")),
    ("https://github.com/contoso/environments.git", GitHubRepo("contoso", "environments")),
    ("https://x-access-token:abc@github.com/contoso/environments.git", GitHubRepo("contoso", "environments")),
    ("git@github.com:contoso/environments.git", GitHubRepo("contoso", "environments")),
    ("ssh://git@github.com/contoso/environments.git", GitHubRepo("contoso", "environments")),
    ("https://dev.azure.com/contoso/ai-app/_git/environments", AzureReposRepo("contoso", "ai-app", "environments")),
    ("https://contoso@dev.azure.com/contoso/ai-app/_git/environments",
     AzureReposRepo("contoso", "ai-app", "environments")),
    ("https://dev.azure.com/contoso/AI%20Platform/_git/env%20repo",
     AzureReposRepo("contoso", "AI Platform", "env repo")),
    ("https://contoso.visualstudio.com/ai-app/_git/environments", AzureReposRepo("contoso", "ai-app", "environments")),
    ("https://contoso.visualstudio.com/DefaultCollection/ai-app/_git/environments",
     AzureReposRepo("contoso", "ai-app", "environments")),
    ("git@ssh.dev.azure.com:v3/contoso/ai-app/environments", AzureReposRepo("contoso", "ai-app", "environments")),
    ("contoso@vs-ssh.visualstudio.com:v3/contoso/ai-app/environments",
     AzureReposRepo("contoso", "ai-app", "environments")),
    ("/srv/git/environments.git", None),
    ("file:///srv/git/environments.git", None),
    ("http://127.0.0.1:8418/environments.git", None),
    ("git@gitlab.com:contoso/environments.git", None),
    ("https://github.com/contoso", None),
])
def test_remote_url_picks_the_forge(url: str, expected: object) -> None:
    assert parse_remote(url) == expected


def test_github_enterprise_host_from_github_server_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_remote("https://git.contoso.example/platform/environments.git") is None
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://git.contoso.example")
    assert parse_remote("https://git.contoso.example/platform/environments.git") == GitHubRepo(
        "platform", "environments")


def test_plain_git_remote_gets_no_pull_request() -> None:
    # No token is set: a plain remote must not even look for one.
    assert open_or_update_pull_request("/srv/git/environments.git", "envbot/promote-staging", "main",
                                       "t", "d") is None


# --- GitHub ------------------------------------------------------------------------------------

def test_github_creates_then_updates_the_same_pull_request(github: FakeGitHub) -> None:
    first = open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-staging", "main",
                                        "Promote ai-app to staging", "diff v1")
    assert first == PullRequest(url="https://github.com/contoso/environments/pull/1", number=1, created=True)
    create = next(r for r in github.server.requests if r.method == "POST")
    assert create.path == "/repos/contoso/environments/pulls"
    assert create.body == {"title": "Promote ai-app to staging", "head": "envbot/promote-staging",
                           "base": "main", "body": "diff v1"}
    assert create.headers["authorization"] == f"Bearer {github.state.token}"
    lookup = github.server.requests[0]
    assert lookup.method == "GET"
    assert lookup.query == {"head": "contoso:envbot/promote-staging", "base": "main", "state": "open"}

    again = open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-staging", "main",
                                        "Promote ai-app to staging (2 commits)", "diff v2")
    assert again == PullRequest(url=first.url, number=1, created=False)
    assert len(github.state.pulls) == 1
    assert github.state.pulls[0]["title"] == "Promote ai-app to staging (2 commits)"
    assert github.state.pulls[0]["body"] == "diff v2"
    patch = [r for r in github.server.requests if r.method == "PATCH"]
    assert [(r.path, r.body) for r in patch] == [
        ("/repos/contoso/environments/pulls/1", {"title": "Promote ai-app to staging (2 commits)", "body": "diff v2"}),
    ]


def test_github_unchanged_pull_request_is_not_patched(github: FakeGitHub) -> None:
    open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-prod", "main", "Promote", "same")
    second = open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-prod", "main", "Promote", "same")
    assert second is not None and not second.created
    assert not [r for r in github.server.requests if r.method == "PATCH"]


def test_github_pull_request_opened_concurrently_is_updated(github: FakeGitHub) -> None:
    github.state.race_on_create = True
    result = open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-prod", "main", "Promote prod", "body")
    assert result == PullRequest(url="https://github.com/contoso/environments/pull/1", number=1, created=False)
    statuses = [r.method for r in github.server.requests]
    assert statuses == ["GET", "POST", "GET", "PATCH"]
    assert github.state.pulls[0]["title"] == "Promote prod"


def test_github_long_description_is_truncated_with_a_note(github: FakeGitHub) -> None:
    diff = "```diff\n" + "\n".join(f"-  tag: old{i}\n+  tag: new{i}" for i in range(4000)) + "\n```"
    assert len(diff) > 65536
    open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-prod", "main", "Promote", diff)
    body = github.state.pulls[0]["body"]
    assert len(body) <= 65536
    assert "**Truncated**" in body and "65536" in body
    kept = body.split("\n\n---\n**Truncated**")[0]
    assert kept.count("```") % 2 == 0, "the cut diff block is closed so the note renders as text"
    assert diff.startswith(kept.removesuffix("\n```"))


def test_github_auto_merge_enabled_through_graphql(github: FakeGitHub) -> None:
    open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-dev", "main", "Promote", "b", auto_merge=True)
    graphql = [r for r in github.server.requests if r.path == "/graphql"]
    assert len(graphql) == 1
    assert graphql[0].body["variables"] == {"pullRequestId": github.state.pulls[0]["node_id"]}
    assert github.state.pulls[0]["auto_merge"] == {"merge_method": "merge"}
    assert github.state.pulls[0]["merged"] is False


def test_github_auto_merge_on_a_mergeable_pull_request_merges_it(github: FakeGitHub) -> None:
    github.state.mergeable_now = True
    open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-dev", "main", "Promote", "b", auto_merge=True)
    merge = [r for r in github.server.requests if r.method == "PUT"]
    assert [(r.path, r.body) for r in merge] == [("/repos/contoso/environments/pulls/1/merge",
                                                  {"merge_method": "merge"})]
    assert github.state.pulls[0]["merged"] is True


def test_github_auto_merge_refused_says_why(github: FakeGitHub) -> None:
    github.state.allow_auto_merge = False
    with pytest.raises(ForgeError, match="Auto merge is not allowed for this repository"):
        open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-dev", "main", "Promote", "b", auto_merge=True)


def test_github_bad_token_is_401_with_the_api_message(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "expired")
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request(GITHUB_REMOTE, "envbot/promote-dev", "main", "t", "d")
    assert raised.value.status == 401
    assert "HTTP 401" in str(raised.value) and "Bad credentials" in str(raised.value)


def test_github_unknown_repository_is_404(github: FakeGitHub) -> None:
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request("git@github.com:contoso/nope.git", "envbot/x", "main", "t", "d")
    assert raised.value.status == 404 and "Not Found" in str(raised.value)


def test_github_validation_error_is_reported(github: FakeGitHub) -> None:
    # 422 that is not "already exists": the lookup after it finds nothing, so the error stands.
    def refuse(request):  # the base branch does not exist
        if request.method == "POST":
            return 422, {"message": "Validation Failed",
                         "errors": [{"resource": "PullRequest", "field": "base", "code": "invalid"}]}
        return original(request)

    original = github.server.handle
    github.server.handle = refuse
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request(GITHUB_REMOTE, "envbot/x", "gone", "t", "d")
    assert raised.value.status == 422
    assert "Validation Failed (invalid)" in str(raised.value)


def test_github_missing_token_names_the_variable(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(ForgeError, match="GITHUB_TOKEN"):
        open_or_update_pull_request(GITHUB_REMOTE, "envbot/x", "main", "t", "d")
    assert github.server.requests == []


# --- Azure Repos -------------------------------------------------------------------------------

def test_azure_creates_then_updates_the_same_pull_request(azure: FakeAzureRepos) -> None:
    first = open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-staging", "main",
                                        "Promote ai-app to staging", "diff v1")
    web = f"{azure.server.url}/contoso/ai-app/_git/environments/pullrequest/1"
    assert first == PullRequest(url=web, number=1, created=True)
    search, create = azure.server.requests[:2]
    assert search.method == "GET"
    assert search.path == "/contoso/ai-app/_apis/git/repositories/environments/pullrequests"
    assert search.query == {
        "searchCriteria.sourceRefName": "refs/heads/envbot/promote-staging",
        "searchCriteria.targetRefName": "refs/heads/main",
        "searchCriteria.status": "active",
        "api-version": "7.1",
    }
    assert create.method == "POST" and create.query == {"api-version": "7.1"}
    assert create.body == {"sourceRefName": "refs/heads/envbot/promote-staging",
                           "targetRefName": "refs/heads/main",
                           "title": "Promote ai-app to staging", "description": "diff v1"}
    token = base64.b64decode(create.headers["authorization"].removeprefix("Basic ")).decode()
    assert token == f":{azure.state.token}"

    again = open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-staging", "main",
                                        "Promote ai-app to staging", "diff v2")
    assert again == PullRequest(url=web, number=1, created=False)
    assert len(azure.state.pulls) == 1 and azure.state.pulls[0]["description"] == "diff v2"
    patch = azure.server.requests[-1]
    assert (patch.method, patch.path, patch.body) == (
        "PATCH", "/contoso/ai-app/_apis/git/repositories/environments/pullrequests/1",
        {"title": "Promote ai-app to staging", "description": "diff v2"})


def test_azure_pat_from_azure_devops_ext_pat(azure: FakeAzureRepos, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYSTEM_ACCESSTOKEN")
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", azure.state.token)
    result = open_or_update_pull_request("git@ssh.dev.azure.com:v3/contoso/ai-app/environments",
                                         "envbot/promote-prod", "main", "t", "d")
    assert result is not None and result.created


def test_azure_pull_request_opened_concurrently_is_updated(azure: FakeAzureRepos) -> None:
    azure.state.race_on_create = True
    result = open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-prod", "main", "Promote prod", "body")
    assert result is not None and (result.number, result.created) == (1, False)
    assert [r.method for r in azure.server.requests] == ["GET", "POST", "GET", "PATCH"]
    assert azure.state.pulls[0]["title"] == "Promote prod"


def test_azure_long_description_goes_whole_into_a_comment_once(azure: FakeAzureRepos) -> None:
    diff = "```diff\n" + "\n".join(f"-  digest: sha256:{i:064x}" for i in range(120)) + "\n```"
    assert len(diff) > 4000
    open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-prod", "main", "Promote", diff)
    description = azure.state.pulls[0]["description"]
    assert len(description) <= 4000
    assert "first comment" in description and "**Truncated**" in description
    threads = azure.state.threads[1]
    assert len(threads) == 1
    assert threads[0]["comments"][0]["content"] == FULL_TEXT_HEADING + diff
    assert threads[0]["status"] == 4

    # Same promotion again: nothing new to record.
    open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-prod", "main", "Promote", diff)
    assert len(azure.state.threads[1]) == 1
    # A changed diff is recorded as a new comment.
    open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-prod", "main", "Promote", diff + "\nmore")
    assert len(azure.state.threads[1]) == 2


def test_azure_auto_complete_set_by_the_creator(azure: FakeAzureRepos) -> None:
    open_or_update_pull_request(AZURE_REMOTE, "envbot/promote-dev", "main", "Promote dev", "b", auto_merge=True)
    pull = azure.state.pulls[0]
    assert pull["autoCompleteSetBy"] == {"id": azure.state.identity_id}
    assert pull["completionOptions"] == {"mergeStrategy": "noFastForward", "deleteSourceBranch": True,
                                         "mergeCommitMessage": "Promote dev"}


def test_azure_bad_token_is_401_with_the_api_message(azure: FakeAzureRepos, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "revoked")
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request(AZURE_REMOTE, "envbot/x", "main", "t", "d")
    assert raised.value.status == 401
    assert "TF400813" in str(raised.value) and "token" in str(raised.value)


def test_azure_unknown_repository_is_404(azure: FakeAzureRepos) -> None:
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request("https://dev.azure.com/contoso/ai-app/_git/nope", "envbot/x", "main", "t", "d")
    assert raised.value.status == 404 and "TF401019" in str(raised.value)


def test_azure_conflict_without_a_findable_pull_request_is_reported(azure: FakeAzureRepos) -> None:
    def conflict(request):
        if request.method == "POST":
            return 409, {"message": "TF401179: An active pull request for the source and target branch "
                                    "already exists."}
        return original(request)

    original = azure.server.handle
    azure.server.handle = conflict
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request(AZURE_REMOTE, "envbot/x", "main", "t", "d")
    assert raised.value.status == 409 and "TF401179" in str(raised.value)


def test_azure_missing_token_names_the_variables(azure: FakeAzureRepos, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYSTEM_ACCESSTOKEN")
    with pytest.raises(ForgeError) as raised:
        open_or_update_pull_request(AZURE_REMOTE, "envbot/x", "main", "t", "d")
    assert "SYSTEM_ACCESSTOKEN" in str(raised.value) and "AZURE_DEVOPS_EXT_PAT" in str(raised.value)
    assert azure.server.requests == []


def test_azure_collection_uri_of_another_organization_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.forges.azure_repos import organization_url

    repo = AzureReposRepo("contoso", "ai-app", "environments")
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", "https://dev.azure.com/fabrikam/")
    assert organization_url(repo) == "https://dev.azure.com/contoso"
    monkeypatch.setenv("SYSTEM_COLLECTIONURI", "https://contoso.visualstudio.com/")
    assert organization_url(repo) == "https://contoso.visualstudio.com"


def test_unreachable_forge_is_a_forge_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    with pytest.raises(ForgeError, match="cannot reach"):
        open_or_update_pull_request(GITHUB_REMOTE, "envbot/x", "main", "t", "d")
