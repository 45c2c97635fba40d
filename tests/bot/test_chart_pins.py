"""The chart is part of the release: update --chart, promote, rollback, diff, status, history, verify move
and show it, each side of a diff renders with its own pinned chart, in both repository layouts."""

from __future__ import annotations

import json

import pytest

from bot.values import ReleasePin, read_chart_pin_text
from tests.bot.conftest import release
from tests.bot.envrepo import git, make_env_repo, policy_text, run_envbot
from tests.fixtures.charts import CHART_CHANGE

pytestmark = pytest.mark.docker


def pinned(images, models, charts) -> dict[str, ReleasePin]:
    """Every environment runs image v2, model 2 and chart build 1 (landed long ago)."""
    return {env: release(images["v2"], models["2"], charts["1"]) for env in ("dev", "staging", "prod")}


@pytest.fixture(params=["inside the app repo", "separate repo"])
def layout(request, tmp_path, images, models, charts):
    separate = request.param == "separate repo"
    # No chart path in promotion.yaml and, in the separate layout, no charts/ at all: only the pins render.
    repo = make_env_repo(tmp_path, policy=policy_text(chart_path=False), pins=pinned(images, models, charts),
                         separate=separate)
    return repo, "" if separate else "environments/"


def chart_of(repo, prefix: str, env: str, ref: str = "main"):
    return read_chart_pin_text(repo.show(f"{prefix}{env}/chart.yaml", ref), f"{env}/chart.yaml")


def test_a_chart_only_release_reaches_dev_and_prod_only_by_promotion(layout, images, charts, bot_env):
    repo, prefix = layout
    remote = str(repo.remote)
    prod_before = run_envbot("diff", "prod@HEAD", "prod", "--repo", remote, "--json", env=bot_env)
    assert json.loads(prod_before.stdout)["resources"] == []
    # CI: the commit changed only the chart; dev keeps its image and gets the new chart version.
    proc = run_envbot("update", "dev", "--image", images["v2"].ref, "--chart", charts["2"].ref, "--repo", remote,
                      "--json", env=bot_env)
    result = json.loads(proc.stdout)
    assert result["landed"] == "pushed"
    assert list(result["patches"]) == [f"{prefix}dev/chart.yaml"]
    assert chart_of(repo, prefix, "dev") == charts["2"]
    assert f"Envbot-Chart: {charts['2'].label}" in repo.message()
    # staging and prod render what they rendered before: their files pin build 1.
    for env in ("staging", "prod"):
        assert chart_of(repo, prefix, env) == charts["1"]
    diff = run_envbot("diff", "staging", "dev", "--repo", remote, env=bot_env).stdout
    assert f"+        {CHART_CHANGE}" in diff
    # The promotion's pull request shows the chart row and the template change in the rendered diff.
    proc = run_envbot("promote", "dev", "staging", "--override-reason", "chart-only test", "--repo", remote,
                      "--json", env=bot_env)
    result = json.loads(proc.stdout)
    description = result["description"]
    assert f"| `chart.version` | `{charts['1'].version}` | `{charts['2'].version}` |" in description
    assert f"| `chart.digest` | `{charts['1'].digest}` | `{charts['2'].digest}` |" in description
    assert f"+        {CHART_CHANGE}" in description
    assert "`image.digest`" not in description   # the image did not change: no image row
    # Not merged yet: staging's files on main still pin build 1.
    assert chart_of(repo, prefix, "staging") == charts["1"]
    assert chart_of(repo, prefix, "staging", "envbot/promote-ai-app-staging") == charts["2"]


def test_rollback_restores_the_previous_chart(layout, images, charts, bot_env):
    repo, prefix = layout
    remote = str(repo.remote)
    run_envbot("update", "dev", "--image", images["v3"].ref, "--chart", charts["2"].ref, "--repo", remote,
               env=bot_env)
    assert chart_of(repo, prefix, "dev") == charts["2"]
    run_envbot("rollback", "dev", "--repo", remote, env=bot_env)
    assert chart_of(repo, prefix, "dev") == charts["1"]
    values = repo.show(f"{prefix}dev/values.yaml")
    assert images["v2"].digest in values and images["v3"].digest not in values
    # A chart-only update (only chart.yaml changes) is a release that rollback finds and reverts too.
    run_envbot("update", "dev", "--image", images["v2"].ref, "--chart", charts["2"].ref, "--repo", remote,
               env=bot_env)
    run_envbot("rollback", "dev", "--repo", remote, env=bot_env)
    assert chart_of(repo, prefix, "dev") == charts["1"]


def test_status_history_and_verify_show_the_chart(layout, images, charts, bot_env):
    repo, _ = layout
    remote = str(repo.remote)
    run_envbot("update", "dev", "--image", images["v2"].ref, "--chart", charts["2"].ref, "--repo", remote,
               env=bot_env)
    status = json.loads(run_envbot("status", "--repo", remote, "--json", env=bot_env).stdout)
    rows = {row["env"]: row for row in status["environments"]}
    assert rows["dev"]["chart"] == {"repository": charts["2"].repository, "version": charts["2"].version,
                                    "digest": charts["2"].digest}
    # Same image and model, another chart: not the same release.
    assert rows["dev"]["differs_from_next"] is True
    assert rows["staging"]["differs_from_next"] is False
    table = run_envbot("status", "--repo", remote, env=bot_env).stdout
    assert charts["2"].version in table and "CHART DIGEST" in table
    history = run_envbot("history", "dev", "--repo", remote, env=bot_env).stdout
    assert charts["2"].version in history.splitlines()[2]
    verified = json.loads(run_envbot("verify", "--repo", remote, "--json", env=bot_env).stdout)
    checks = {(r["env"], r["check"]): r for r in verified["results"]}
    assert checks[("dev", "chart")]["ok"] and checks[("prod", "chart")]["ok"]


def test_verify_fails_when_a_pinned_chart_digest_is_not_in_the_registry(layout, images, charts, bot_env):
    repo, prefix = layout
    repo.pull()
    path = repo.work / f"{prefix}prod" / "chart.yaml"
    path.write_text(path.read_text().replace(charts["1"].digest, "sha256:" + "0" * 64))
    repo.commit_as_human("prod: a chart digest nobody pushed")
    proc = run_envbot("verify", "--repo", str(repo.remote), env=bot_env, check=False)
    assert f"helm/ai-app@sha256:{'0' * 64} is not in the registry" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "envbot: error: 1 pin(s) failed verification"


def test_bad_chart_references_are_refused_with_nothing_pushed(env_repo, images, charts, bot_env):
    remote = str(env_repo.remote)
    image = images["v1"].ref
    refs = git(env_repo.remote, "for-each-ref", "--format=%(refname) %(objectname)")
    missing_digest = f"{charts['1'].repository}:{charts['1'].version}@sha256:{'0' * 64}"
    missing_version = f"{charts['1'].repository}:9.9.9"
    unreachable = "oci://127.0.0.1:9/helm/ai-app:0.1.0"
    moved = f"{charts['1'].repository}:{charts['1'].version}@{charts['2'].digest}"
    expected = {
        missing_digest: f"helm/ai-app@sha256:{'0' * 64} is not in the registry",
        missing_version: "helm/ai-app:9.9.9 is not in the registry",
        unreachable: "registry 127.0.0.1:9:",
        moved: f"points at {charts['1'].digest}, not the pinned {charts['2'].digest}",
        "--chart=-x": "expected oci://<registry>/<path>/<chart>:<version>",
        f"{charts['1'].repository}:1.0.0+build.7": "build metadata",
    }
    for chart, message in expected.items():
        args = ["update", "dev", "--image", image, "--repo", remote]
        args += [chart] if chart.startswith("--chart=") else ["--chart", chart]
        proc = run_envbot(*args, env=bot_env, check=False)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (chart, proc.stderr)
    assert git(env_repo.remote, "for-each-ref", "--format=%(refname) %(objectname)") == refs


def test_an_environment_without_a_chart_file_cannot_take_a_chart_pin(tmp_path, images, models, charts, bot_env):
    # A repo from before chart pins: it renders promotion.yaml's chart path, and verify says so.
    repo = make_env_repo(tmp_path, pins={env: release(images["v2"], models["2"]) for env in ("dev", "staging")})
    proc = run_envbot("update", "dev", "--image", images["v1"].ref, "--chart", charts["1"].ref,
                      "--repo", str(repo.remote), env=bot_env, check=False)
    assert "environments/dev/chart.yaml: dev has no chart pin file" in proc.stderr
    proc = run_envbot("verify", "dev", "--repo", str(repo.remote), env=bot_env, check=False)
    assert "environments/dev/chart.yaml: no chart pin" in proc.stdout


def test_a_chart_from_another_repository_than_promotion_yaml_allows_is_refused(tmp_path, images, models, charts,
                                                                               bot_env):
    allowed = "    chart:\n      repo: oci://registry.example/helm\n      name: ai-app\n"
    policy = policy_text(chart_path=False).replace('    values: "{env}/values.yaml"\n',
                                                   '    values: "{env}/values.yaml"\n' + allowed)
    repo = make_env_repo(tmp_path, policy=policy, pins=pinned(images, models, charts))
    refs = git(repo.remote, "for-each-ref", "--format=%(refname) %(objectname)")
    proc = run_envbot("update", "dev", "--image", images["v2"].ref, "--chart", charts["2"].ref,
                      "--repo", str(repo.remote), env=bot_env, check=False)
    assert proc.stderr.strip() == (f"envbot: error: environments/dev/chart.yaml: chart {charts['2'].repository} is "
                                   f"not the chart promotion.yaml allows (oci://registry.example/helm/ai-app)")
    assert git(repo.remote, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    # The pins already there are reported by verify, and diff refuses to render them.
    proc = run_envbot("verify", "prod", "--repo", str(repo.remote), env=bot_env, check=False)
    assert "is not the chart promotion.yaml allows" in proc.stdout
    proc = run_envbot("diff", "staging", "prod", "--repo", str(repo.remote), env=bot_env, check=False)
    assert "is not the chart promotion.yaml allows" in proc.stderr
