"""envbot under real conditions (issue 11): refused pushes, races, Windows files, JSON errors.

The fast tier: images are pushed through the registry's /v2 API (tests/fixtures/oci.py), so these
tests need the local registry, Azurite and helm, but no Docker engine.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.envrepo import REPO_ROOT, git, make_env_repo, policy_text, run_envbot

HOOK_PREAMBLE = """#!/bin/sh
# A hook runs with GIT_DIR & co. of the push it judges; a nested envbot run must not inherit them.
unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_PUSH_OPTION_COUNT
"""


def install_hook(remote: Path, name: str, body: str) -> None:
    hook = remote / "hooks" / name
    hook.write_text(HOOK_PREAMBLE + body)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def refs(remote: Path) -> str:
    return git(remote, "for-each-ref", "--format=%(refname) %(objectname)")


def json_error(proc: subprocess.CompletedProcess[str]) -> dict:
    error = json.loads(proc.stdout)
    assert set(error) >= {"error", "kind", "exit_code"} and error["exit_code"] == proc.returncode
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return error


# Finding 1: a push refused by a server-side hook is not a race.
def test_push_refused_by_a_hook_is_reported_once_without_retries(fast_repo, oci_images, bot_env, tmp_path):
    calls = tmp_path / "hook-calls"
    install_hook(fast_repo.remote, "pre-receive",
                 f'echo call >> "{calls}"\necho "main is protected: open a pull request" >&2\nexit 1\n')
    before = refs(fast_repo.remote)
    proc = run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--repo", str(fast_repo.remote), "--json",
                      env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "push-refused" and proc.returncode == 5
    assert "main is protected: open a pull request" in error["error"]
    assert "pre-receive hook declined" in error["error"]
    assert calls.read_text().count("call") == 1          # no retries
    assert refs(fast_repo.remote) == before


def no_soak_policy() -> str:
    return policy_text(staging_landing="push").replace("    soak: 30m\n", "")


# Finding 2: a retry re-reads the source pin; it must not ship what the source has just rolled back.
def test_retry_rereads_the_source_pin(tmp_path, fast_pins, oci_images, bot_env):
    repo = make_env_repo(tmp_path, policy=no_soak_policy(), pins=fast_pins)
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--repo", str(repo.remote), env=bot_env)
    mark, log = tmp_path / "hook-ran", tmp_path / "hook.log"
    # The first push is rejected, and meanwhile dev is rolled back (v3 -> v2) by another envbot run.
    install_hook(repo.remote, "pre-receive", f"""
if [ ! -e "{mark}" ]; then
  touch "{mark}"
  cd "{REPO_ROOT}" && "{sys.executable}" -m bot.main rollback dev --repo "{repo.remote}" >> "{log}" 2>&1
  echo "try again" >&2
  exit 1
fi
exit 0
""")
    proc = run_envbot("promote", "dev", "staging", "--repo", str(repo.remote), "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert "rollback committed" in log.read_text() or "pushed" in log.read_text(), log.read_text()
    assert oci_images["v2"].digest in repo.show("environments/dev/values.yaml")
    # staging keeps v2: the retry read dev again and found nothing new to promote.
    assert oci_images["v3"].digest not in repo.show("environments/staging/values.yaml")
    assert result["changed"] is False and result["attempts"] == 2 and result["replayed"] == 1


def merge_as_human(repo, branch: str, message: str) -> str:
    env = {"GIT_AUTHOR_NAME": "Human", "GIT_AUTHOR_EMAIL": "human@example.com",
           "GIT_COMMITTER_NAME": "Human", "GIT_COMMITTER_EMAIL": "human@example.com"}
    repo.pull()
    git(repo.work, "fetch", "-q", "origin", branch)
    git(repo.work, "merge", "-q", "--no-ff", "-m", message, "FETCH_HEAD", env=env)
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    git(repo.remote, "branch", "-D", branch)
    return git(repo.work, "rev-parse", "FETCH_HEAD")


# Finding 3: `rollback --to` accepts what `history` lists, including envbot's commit inside a merged PR.
def test_rollback_to_a_commit_inside_a_merged_pull_request(fast_repo, oci_images, bot_env):
    remote = ("--repo", str(fast_repo.remote))
    branch = "envbot/promote-ai-app-staging"
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, *remote, env=bot_env)
    run_envbot("promote", "dev", "staging", "--override-reason", "test: no soak", *remote, env=bot_env)
    first = merge_as_human(fast_repo, branch, "Merge pull request 1")
    run_envbot("update", "dev", "--image", oci_images["v1"].ref, *remote, env=bot_env)
    run_envbot("promote", "dev", "staging", "--override-reason", "test: no soak", *remote, env=bot_env)
    merge_as_human(fast_repo, branch, "Merge pull request 2")
    history = json.loads(run_envbot("history", "staging", "--json", *remote, env=bot_env).stdout)
    listed = {e["commit"]: e for e in history["entries"]}
    assert listed[first]["action"] == "promote" and listed[first]["release"] is True
    proc = run_envbot("rollback", "staging", "--to", first[:12], "--json", *remote, env=bot_env)
    result = json.loads(proc.stdout)
    assert len(result["reverted"]) == 1          # only the second promotion
    rolled = fast_repo.show("environments/staging/values.yaml", "envbot/rollback-ai-app-staging")
    assert oci_images["v3"].digest in rolled     # back to what the first promotion pinned, not before it


# Finding 4: rollback verifies the release it returns to still exists.
def test_rollback_refuses_an_image_deleted_from_the_registry(tmp_path, fast_pins, oci_images, oci_pusher,
                                                              oci_registry, models, bot_env):
    from tests.bot.conftest import PushedImage, release

    digest = oci_pusher.push("fast/gone", "g1", {"org.opencontainers.image.revision": "0" * 40})
    gone = PushedImage(f"{oci_registry.host}/fast/gone", "g1", digest, "0" * 40)
    repo = make_env_repo(tmp_path, pins={**fast_pins, "dev": release(gone, models["2"])})
    remote = ("--repo", str(repo.remote))
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, *remote, env=bot_env)
    oci_pusher.delete("fast/gone", digest)
    before = refs(repo.remote)
    proc = run_envbot("rollback", "dev", "--json", *remote, env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "conflict" and f"{gone.name}@{digest} is not in the registry" in error["error"]
    assert refs(repo.remote) == before
    run_envbot("rollback", "dev", "--override-reason", "image restored by hand", *remote, env=bot_env)
    assert digest in repo.show("environments/dev/values.yaml")
    assert "Envbot-Override: image restored by hand" in repo.message()


def publish_bad_metadata(azurite, name: str) -> str:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    blob = service.get_blob_client("envbot-models", f"{name}/1/model.onnx")
    blob.upload_blob(b"not really onnx", overwrite=True, metadata={"sha256": "xyz"})
    return f"{azurite.blob_endpoint}/envbot-models/{name}/1/model.onnx"


# Finding 5: model metadata must hold a sha256 (64 hex) when it is pinned, and verify says so afterwards.
def test_model_sha256_metadata_is_validated(fast_repo, oci_images, models, azurite, bot_env):
    uri = publish_bad_metadata(azurite, "bad-metadata")
    before = refs(fast_repo.remote)
    proc = run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--model", uri, "--json",
                      "--repo", str(fast_repo.remote), env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "bad-input" and "expected 64 hexadecimal characters, got 'xyz'" in error["error"]
    assert refs(fast_repo.remote) == before
    # A person pinned it by hand: verify fails instead of comparing "xyz" with "xyz".
    fast_repo.pull()
    path = fast_repo.work / "environments" / "dev" / "values.yaml"
    path.write_text(path.read_text().replace(models["2"].uri, uri).replace(models["2"].sha256, "xyz"))
    fast_repo.commit_as_human("pin by hand")
    proc = run_envbot("verify", "dev", "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "verify-failed" and error["ok"] is False
    assert [r["ok"] for r in error["results"] if r["check"] == "model"] == [False]


# Finding 6: a CRLF values file stays CRLF and only the pinned lines change.
def test_crlf_values_file_changes_only_the_pinned_lines(fast_repo, oci_images, bot_env):
    fast_repo.pull()
    path = fast_repo.work / "environments" / "dev" / "values.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    fast_repo.commit_as_human("dev values from a Windows editor")
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--repo", str(fast_repo.remote), env=bot_env)
    numstat = git(fast_repo.remote, "diff", "--numstat", "main~1", "main")
    assert numstat.split() == ["2", "2", "environments/dev/values.yaml"]     # tag and digest
    data = subprocess.run(["git", "show", "main:environments/dev/values.yaml"], cwd=fast_repo.remote,
                          capture_output=True, check=True).stdout
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\r\n") == data.count(b"\n")


# Finding 7: merge keys on pins and unknown placeholders in promotion.yaml: file:line, no traceback.
def test_merge_key_in_the_image_block_is_refused_with_file_and_line(fast_repo, oci_images, bot_env):
    fast_repo.pull()
    path = fast_repo.work / "environments" / "dev" / "values.yaml"
    text = path.read_text()
    path.write_text("imageDefaults: &defaults\n  pullPolicy: IfNotPresent\n"
                    + text.replace("image:\n", "image:\n  <<: *defaults\n", 1))
    fast_repo.commit_as_human("merge key")
    line = path.read_text().splitlines().index("  <<: *defaults") + 1
    proc = run_envbot("update", "dev", "--image", oci_images["v3"].ref, "--repo", str(fast_repo.remote), "--json",
                      env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "bad-input"
    assert error["error"].startswith(f"environments/dev/values.yaml:{line}: 'image' has a YAML merge key (<<)")


def test_unknown_placeholder_in_promotion_yaml_is_reported_at_load(fast_repo, oci_images, bot_env):
    fast_repo.pull()
    policy = fast_repo.work / "environments" / "promotion.yaml"
    policy.write_text(policy.read_text().replace('values: "{env}/values.yaml"', 'values: "{environment}/values.yaml"'))
    fast_repo.commit_as_human("typo")
    line = policy.read_text().splitlines().index('    values: "{environment}/values.yaml"') + 1
    for verb in (["status"], ["update", "dev", "--image", oci_images["v3"].ref]):
        proc = run_envbot(*verb, "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
        error = json_error(proc)
        assert error["kind"] == "bad-input"
        assert error["error"].startswith(f"environments/promotion.yaml:{line}: apps.ai-app.values: "
                                         "'{environment}/values.yaml' uses {environment}")


# Finding 8: --json on failure, gates say when they can pass, a closed pipe is not a traceback.
def test_gate_refusal_as_json_says_when_it_can_pass(fast_repo, oci_images, bot_env):
    remote = ("--repo", str(fast_repo.remote))
    run_envbot("update", "dev", "--image", oci_images["v3"].ref, *remote, env=bot_env)
    landed = int(git(fast_repo.remote, "log", "-1", "--format=%ct", "main"))
    proc = run_envbot("promote", "dev", "staging", "--json", *remote, env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "gate-refused" and proc.returncode == 4
    from datetime import UTC, datetime, timedelta

    assert datetime.fromisoformat(error["retry_after"]) == datetime.fromtimestamp(landed, UTC) + timedelta(minutes=30)
    assert [g.split(":")[0] for g in error["gates"]] == ["soak"]


def test_usage_errors_are_json_too_and_read_only_verbs_take_no_dry_run(fast_repo, bot_env):
    proc = run_envbot("status", "--dry-run", "--json", "--repo", str(fast_repo.remote), env=bot_env, check=False)
    error = json_error(proc)
    assert error["kind"] == "bad-input" and "unrecognized arguments: --dry-run" in error["error"]
    proc = run_envbot("update", "qa", "--image", "x", "--json", env=bot_env, check=False)
    assert json_error(proc)["kind"] == "bad-input"
    version = run_envbot("--version", env=bot_env)
    assert version.stdout.startswith("envbot ") and len(version.stdout.split()) == 2


def test_closed_pipe_is_not_a_traceback(fast_repo, bot_env):
    proc = subprocess.Popen([sys.executable, "-m", "bot.main", "history", "dev", "--json", "--repo",
                             str(fast_repo.remote)], cwd=REPO_ROOT, env=bot_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()               # the reader is gone before envbot writes (like `| head -0`)
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert proc.returncode == 141


def test_unexpected_errors_are_one_line(monkeypatch, capsys):
    """The catch-all: any exception a verb did not anticipate is one line (and a JSON object), exit 1."""
    from bot import main
    from bot.commands import verify

    def broken(args):
        raise ValueError("bad digest 'sha256:xyz'\nsecond line")

    monkeypatch.setattr(verify, "run", broken)
    assert main.main(["verify", "--json"]) == 1
    out, err = capsys.readouterr()
    assert err == "envbot: error: internal error: ValueError: bad digest 'sha256:xyz'\n"
    assert json.loads(out) == {"error": "internal error: ValueError: bad digest 'sha256:xyz'", "kind": "internal",
                               "exit_code": 1}


# Finding 9: many writers: everyone lands exactly once; different files never replay.
def concurrent_updates(repo, images: list[str], apps: list[str], env: dict[str, str]) -> list[dict]:
    processes = [subprocess.Popen([sys.executable, "-m", "bot.main", "update", "dev", "--app", app, "--image", image,
                                   "--json", "--repo", str(repo.remote)], cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for app, image in zip(apps, images, strict=True)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{out}\n{err}"
        results.append(json.loads(out))
    return results


def many_apps_repo(tmp_path: Path, fast_pins, count: int):
    apps = "".join(f'  app{i}:\n    values: "apps/app{i}/{{env}}.yaml"\n    chart:\n      path: ../charts/ai-app\n'
                   for i in range(count))
    policy = "apps:\n" + apps + "environments:\n  - name: dev\n    namespace: ai-app-dev\n    landing: push\n"
    repo = make_env_repo(tmp_path, policy=policy, pins=fast_pins)
    repo.pull()
    for i in range(count):
        app_dir = repo.work / "environments" / "apps" / f"app{i}"
        app_dir.mkdir(parents=True)
        (app_dir / "dev.yaml").write_text((repo.work / "environments" / "dev" / "values.yaml").read_text())
    return repo, repo.commit_as_human(f"{count} apps")


WRITERS = 12


# The push queue on: writers of one machine take turns (bot/pushqueue.py); off: they race through the
# remote, as writers on separate machines do.
QUEUE = pytest.mark.parametrize("queue", ["on", "off"])


@QUEUE
def test_many_writers_on_one_file_all_land_once(tmp_path, fast_pins, oci_registry, oci_pusher, bot_env, queue):
    repo, base = many_apps_repo(tmp_path, fast_pins, 1)
    tags = [f"w{i}" for i in range(WRITERS)]
    digests = [oci_pusher.push("fast/writers", tag, {"org.opencontainers.image.revision": f"{i:040d}"})
               for i, tag in enumerate(tags)]
    results = concurrent_updates(repo, [f"{oci_registry.host}/fast/writers:{t}" for t in tags], ["app0"] * WRITERS,
                                 {**bot_env, "ENVBOT_PUSH_QUEUE": queue})
    landed = git(repo.remote, "log", "--format=%(trailers:key=Envbot-Image,valueonly)", f"{base}..main").split()
    assert sorted(d.split("@")[1] for d in landed) == sorted(digests)      # each exactly once
    assert git(repo.remote, "rev-list", "--merges", "--count", "main") == "0"
    assert all(r["changed"] and r["landed"] == "pushed" for r in results)
    if queue == "on":
        # Each writer pushed once, in its turn, on the tip it saw then (replayed there when it had moved).
        assert [r["attempts"] for r in results] == [1] * WRITERS
    else:
        assert sum(r["attempts"] for r in results) >= WRITERS


@QUEUE
def test_many_writers_on_different_files_rebase_instead_of_replaying(tmp_path, fast_pins, oci_images, bot_env, queue):
    repo, base = many_apps_repo(tmp_path, fast_pins, WRITERS)
    apps = [f"app{i}" for i in range(WRITERS)]
    results = concurrent_updates(repo, [oci_images["v3"].ref] * WRITERS, apps, {**bot_env, "ENVBOT_PUSH_QUEUE": queue})
    landed = git(repo.remote, "log", "--format=%(trailers:key=Envbot-App,valueonly)", f"{base}..main").split()
    assert sorted(landed) == sorted(apps)
    for app in apps:
        assert oci_images["v3"].digest in repo.show(f"environments/apps/{app}/dev.yaml")
    # Nobody touched another writer's file: a rejected push is always a rebase, never a replay.
    assert [r["replayed"] for r in results] == [0] * WRITERS
    if queue == "on":
        assert [r["attempts"] for r in results] == [1] * WRITERS
    else:
        assert all(r["attempts"] == r["rebased"] + 1 for r in results)
