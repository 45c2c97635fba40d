"""envbot status, history, diff and verify on a real remote, registry and Azurite."""

from __future__ import annotations

import json

import pytest

from tests.bot.envrepo import run_envbot

pytestmark = pytest.mark.docker


def test_status_history_diff_verify(env_repo, images, models, bot_env):
    remote = str(env_repo.remote)
    base = env_repo.head()
    run_envbot("update", "dev", "--image", images["v3"].ref, "--model", models["1"].uri, "--repo", remote, env=bot_env)
    update = env_repo.head()
    status = json.loads(run_envbot("status", "--repo", remote, "--json", env=bot_env).stdout)
    rows = {row["env"]: row for row in status["environments"]}
    assert rows["dev"]["commit"] == update and rows["dev"]["by"] == "envbot"
    assert rows["dev"]["differs_from_next"] is True
    assert rows["staging"]["commit"] == base and rows["staging"]["differs_from_next"] is True
    table = run_envbot("status", "--repo", remote, env=bot_env).stdout
    assert "differs from staging" in table and images["v3"].digest[7:19] in table

    history = json.loads(run_envbot("history", "dev", "--repo", remote, "--json", env=bot_env).stdout)
    assert [e["action"] for e in history["entries"]] == ["update", "manual edit"]
    assert history["entries"][0]["image"] == f"{images['v3'].name}@{images['v3'].digest}"

    diff = run_envbot("diff", f"dev@{base[:10]}", "dev", "--repo", remote, env=bot_env).stdout
    assert f"--- dev@{base[:10]}/Deployment/ai-app" in diff
    assert f"+          image: {images['v3'].name}@{images['v3'].digest}" in diff
    assert "No rendered change." in run_envbot("diff", "dev", "dev@HEAD", "--repo", remote, env=bot_env).stdout

    verified = json.loads(run_envbot("verify", "--repo", remote, "--json", "--deep", env=bot_env).stdout)
    assert verified["ok"] and len(verified["results"]) == 9   # image, model, chart per env
