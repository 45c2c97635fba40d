"""envbot propose against the GitHub and Azure Repos stand-ins: gate statuses and completion calls with
the documented payloads, posted again only when a gate changes.

A forge remote URL reaches the local bare repository through git's url.<base>.insteadOf (see
test_promote_gates.py), so branches are real git and pull requests live on the fake forge.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bot.envrepo import EnvRepo, make_env_repo, run_envbot
from tests.bot.test_promote_gates import (  # noqa: F401  (fixtures)
    AZURE_REMOTE,
    GITHUB_REMOTE,
    azure_repos,
    github,
    serve_remote_as,
)
from tests.bot.test_propose import prod_merge_policy

pytestmark = pytest.mark.docker
STAGING_BRANCH = "envbot/promote-ai-app-staging"
PROD_BRANCH = "envbot/promote-ai-app-prod"


def make_repo(tmp_path, initial_pins) -> EnvRepo:
    return make_env_repo(tmp_path, policy=prod_merge_policy("true", "squash"),
                         pins=initial_pins)


def propose(remote: str, bot_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    proc = run_envbot("propose", "--repo", remote, "--json", env=bot_env)
    return {p["env"]: p for p in json.loads(proc.stdout)["proposals"]}


def test_github_statuses_and_merge(tmp_path, initial_pins, images, bot_env, github):  # noqa: F811
    repo = make_repo(tmp_path, initial_pins)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", str(repo.remote), env=bot_env)
    serve_remote_as(bot_env, GITHUB_REMOTE, repo)

    first = propose(GITHUB_REMOTE, bot_env)
    staging, prod = first["staging"], first["prod"]
    assert staging["action"] == "opened" and prod["action"] == "merged"
    pulls = {p["head"]["ref"]: p for p in github.state.pulls}
    assert staging["pull_request"] == pulls[STAGING_BRANCH]["html_url"]
    # POST /repos/{owner}/{repo}/statuses/{sha} on the proposal's head commit, one context per gate.
    statuses = github.current_statuses(staging["commit"])
    assert {c: s["state"] for c, s in statuses.items()} == {
        "envbot/soak": "pending", "envbot/freeze": "success", "envbot/artifacts": "success",
        "envbot/chart": "success"}
    assert "staging requires 30m" in statuses["envbot/soak"]["description"]
    assert all(len(s["description"]) <= 140 for s in statuses.values())
    # prod: staging's release soaked long ago, autoMerge: true, mergeStrategy: squash -> PUT .../merge.
    assert github.state.merges == [{"number": pulls[PROD_BRANCH]["number"], "merge_method": "squash",
                                    "sha": prod["commit"], "commit_title": f"envbot: promote ai-app staging -> "
                                    f"prod ({images['v2'].tag})", "commit_message": github.state.merges[0][
                                        "commit_message"]}]
    assert "Envbot-From: staging@" in github.state.merges[0]["commit_message"]
    assert pulls[PROD_BRANCH]["merged"] is True
    assert pulls[STAGING_BRANCH]["merged"] is False   # no autoMerge for staging: a reviewer merges

    # Nothing new: no status posted again, no pull request edited, nothing pushed.
    posted = len([r for r in github.server.requests if r.method in ("POST", "PATCH", "PUT")])
    second = propose(GITHUB_REMOTE, bot_env)["staging"]
    assert second["action"] == "blocked" and second["statuses_posted"] == 0
    assert second["commit"] == staging["commit"]
    writes = [r for r in github.server.requests if r.method in ("POST", "PATCH", "PUT")]
    # Only prod, which the fake forge "merged" without moving the bare remote's main, is proposed again.
    assert all("/statuses/" + staging["commit"] not in r.path for r in writes[posted:])
    assert not [r for r in writes[posted:] if r.method == "PATCH" and r.path.endswith(
        f"/pulls/{pulls[STAGING_BRANCH]['number']}")]


def test_azure_repos_statuses_and_completion(tmp_path, initial_pins, images, bot_env, azure_repos):  # noqa: F811
    repo = make_repo(tmp_path, initial_pins)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--repo", str(repo.remote), env=bot_env)
    serve_remote_as(bot_env, AZURE_REMOTE, repo)

    first = propose(AZURE_REMOTE, bot_env)
    staging, prod = first["staging"], first["prod"]
    assert staging["action"] == "opened" and prod["action"] == "merged"
    pulls = {p["sourceRefName"]: p for p in azure_repos.state.pulls}
    staging_pull = pulls[f"refs/heads/{STAGING_BRANCH}"]
    prod_pull = pulls[f"refs/heads/{PROD_BRANCH}"]
    # POST .../pullRequests/{id}/statuses with {state, description, context: {name, genre}}.
    statuses = azure_repos.current_statuses(staging_pull["pullRequestId"])
    assert {c: s["state"] for c, s in statuses.items()} == {
        "envbot/soak": "pending", "envbot/freeze": "succeeded", "envbot/artifacts": "succeeded",
        "envbot/chart": "succeeded"}
    assert statuses["envbot/soak"]["context"] == {"name": "soak", "genre": "envbot"}
    # PATCH .../pullrequests/{id}: status completed, the reviewed source commit, squash as configured.
    assert prod_pull["status"] == "completed"
    assert prod_pull["lastMergeSourceCommit"] == {"commitId": prod["commit"]}
    assert prod_pull["completionOptions"]["mergeStrategy"] == "squash"
    assert prod_pull["completionOptions"]["deleteSourceBranch"] is True
    assert "Envbot-From: staging@" in prod_pull["completionOptions"]["mergeCommitMessage"]
    assert staging_pull["status"] == "active"

    count = len(azure_repos.state.statuses[staging_pull["pullRequestId"]])
    second = propose(AZURE_REMOTE, bot_env)["staging"]
    assert second["action"] == "blocked" and second["statuses_posted"] == 0
    assert len(azure_repos.state.statuses[staging_pull["pullRequestId"]]) == count

    # dev rolled back to staging's release: the proposal is abandoned and its branch deleted.
    run_envbot("update", "dev", "--image", images["v2"].ref, "--repo", str(repo.remote), env=bot_env)
    closed = propose(AZURE_REMOTE, bot_env)["staging"]
    assert closed["action"] == "closed"
    assert staging_pull["status"] == "abandoned"
