"""Envbot-* trailers count only on commits envbot made (its author identity and the full trailer set):
a person's commit with a forged `Envbot-Reverts:` line cannot hide a release from rollback, and one
with a forged `Envbot-Action: update` is not a release to roll back."""

from __future__ import annotations

import json

from tests.bot.envrepo import git, run_envbot

DEV = "environments/dev/values.yaml"


def human_edit(repo, message: str) -> str:
    repo.pull()
    path = repo.work / DEV
    path.write_text(path.read_text().replace("replicaCount: 1", "replicaCount: 2", 1)
                    if "replicaCount: 1" in path.read_text() else path.read_text() + "# touched\n")
    return repo.commit_as_human(message)


def test_forged_reverts_trailer_does_not_block_rollback(fast_repo, oci_images, bot_env):
    remote = ("--repo", str(fast_repo.remote))
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, *remote, env=bot_env)
    update = fast_repo.head()
    human_edit(fast_repo, f"tweak dev\n\nEnvbot-Reverts: {update}\n")
    result = json.loads(run_envbot("rollback", "dev", "--json", *remote, env=bot_env).stdout)
    assert result["reverted"] == [update]
    assert oci_images["v2"].digest in fast_repo.show(DEV)


def test_forged_release_trailers_are_not_a_release(fast_repo, oci_images, bot_env):
    remote = ("--repo", str(fast_repo.remote))
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, *remote, env=bot_env)
    update = fast_repo.head()
    human_edit(fast_repo, "tweak\n\nEnvbot-Action: update\nEnvbot-App: ai-app\nEnvbot-Env: dev\n")
    history = json.loads(run_envbot("history", "dev", "--json", *remote, env=bot_env).stdout)
    assert [e["action"] for e in history["entries"][:2]] == ["manual edit", "update"]
    result = json.loads(run_envbot("rollback", "dev", "--json", "--dry-run", *remote, env=bot_env).stdout)
    assert result["reverted"] == [update]
    assert git(fast_repo.remote, "rev-parse", "main") != update
