"""What a pull request writes into promotion.yaml or the chart reaches helm as data, never as a flag,
and helm sees neither the job's secrets nor files outside the chart (docs/security.md, cases 1 and 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.helm import check_chart_name, check_chart_repo, check_chart_version
from bot.output import EnvbotError
from tests.bot.envrepo import EnvRepo, make_env_repo, policy_text, run_envbot
from tests.security.conftest import CANARY_ENV, FakeHelm, envbot_env

POLICY = "environments/promotion.yaml"


def with_chart(repo: EnvRepo, chart_yaml: str) -> None:
    """A pull request that changes only where promotion.yaml takes the chart from."""
    text = policy_text().replace("    chart:\n      path: ../charts/ai-app\n", f"    chart:\n{chart_yaml}")
    assert text != policy_text()
    (repo.work / POLICY).write_text(text)
    repo.commit_as_human("promotion.yaml: chart source")


def helm_env(tmp_path: Path, fake_helm: FakeHelm, **extra: str) -> dict[str, str]:
    env = envbot_env(tmp_path, **extra)
    env["PATH"] = f"{fake_helm.directory}{os.pathsep}{env['PATH']}"
    return env


@pytest.mark.parametrize("name", ["--post-renderer=/bin/sh", "--set-file=leak=/etc/hostname", "-x"])
def test_chart_name_never_reaches_helm_as_a_flag(tmp_path: Path, fake_helm: FakeHelm, name: str) -> None:
    repo = make_env_repo(tmp_path)
    with_chart(repo, f"      repo: https://127.0.0.1:9/charts\n      name: \"{name}\"\n      version: 1.0.0\n")
    proc = run_envbot("diff", "dev", "staging", "--repo", str(repo.remote), env=helm_env(tmp_path, fake_helm),
                      check=False)
    assert "apps.ai-app.chart.name" in proc.stderr and "is not a chart name" in proc.stderr
    assert not any(arg.startswith(name) for call in fake_helm.calls() for arg in call["argv"]), fake_helm.calls()


@pytest.mark.parametrize(("chart", "field", "problem"), [
    ("      repo: http://127.0.0.1:9/charts\n      name: ai-app\n", "repo", "is not a chart repository"),
    ("      repo: file:///etc\n      name: ai-app\n", "repo", "is not a chart repository"),
    ("      repo: \"--repo=https://127.0.0.1:9\"\n      name: ai-app\n", "repo", "is not a chart repository"),
    ("      repo: oci://user:pw@127.0.0.1:9/charts\n      name: ai-app\n", "repo", "is not a chart repository"),
    ("      repo: oci://127.0.0.1:9/charts\n      name: ai-app\n      version: \"--devel\"\n", "version",
     "is not a SemVer version"),
    ("      repo: oci://127.0.0.1:9/charts\n      name: ai-app\n      version: \">=1.0.0\"\n", "version",
     "is not a SemVer version"),
    ("      path: ../../../../../../etc\n", "path", "outside the repository"),
])
def test_chart_source_outside_its_grammar_is_refused_before_helm(tmp_path: Path, fake_helm: FakeHelm, chart: str,
                                                                 field: str, problem: str) -> None:
    repo = make_env_repo(tmp_path)
    with_chart(repo, chart)
    proc = run_envbot("diff", "dev", "staging", "--repo", str(repo.remote), env=helm_env(tmp_path, fake_helm),
                      check=False)
    assert f"apps.ai-app.chart.{field}" in proc.stderr and problem in proc.stderr, proc.stderr
    assert "pw@" not in proc.stderr
    assert fake_helm.calls() == []


def test_helm_gets_positionals_after_double_dash_and_no_secrets(tmp_path: Path, fake_helm: FakeHelm) -> None:
    repo = make_env_repo(tmp_path)
    secrets = {"SYSTEM_ACCESSTOKEN": CANARY_ENV, "AZURE_CLIENT_SECRET": CANARY_ENV, "AWS_SECRET_ACCESS_KEY": CANARY_ENV,
               "GITHUB_TOKEN": CANARY_ENV, "ARGOCD_AUTH_TOKEN": CANARY_ENV, "AZURE_DEVOPS_EXT_PAT": CANARY_ENV}
    env = helm_env(tmp_path, fake_helm, **secrets)
    proc = run_envbot("diff", "dev", "staging", "--repo", str(repo.remote), env=env)
    assert "ConfigMap/fake" in proc.stdout
    calls = fake_helm.calls()
    assert len(calls) == 2
    for call in calls:
        argv = call["argv"]
        assert argv[0] == "template"
        end = argv.index("--")
        assert argv[end + 1] == "ai-app" and argv[end + 2].endswith("charts/ai-app") and len(argv) == end + 3
        # Every option carries its value in the same argument: nothing after an option can become one.
        assert all(a.startswith("--") and "=" in a for a in argv[1:end]), argv
        assert CANARY_ENV not in str(call["env"])
        assert not {k for k in call["env"] if k.startswith(("AZURE_", "AWS_", "GITHUB_", "ARGOCD_", "SYSTEM_"))}
        assert call["env"]["HOME"] != env["HOME"] and call["env"]["HELM_PLUGINS"].startswith(call["env"]["HOME"])


def leaking_chart(repo: EnvRepo, secret_file: Path, link: str = "files/env") -> None:
    """A pull request adding a symbolic link out of the chart and a template that prints it."""
    chart = repo.work / "charts" / "ai-app"
    (chart / link).parent.mkdir(parents=True, exist_ok=True)
    (chart / link).symlink_to(secret_file)
    (chart / "templates" / "leak.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n"
        "  namespace: {{ .Release.Namespace }}\n"
        f"  leaked: {{{{ .Files.Get \"{link}\" | quote }}}}\n")
    repo.commit_as_human("chart: a file")


@pytest.mark.parametrize("link", ["files/env", "files/deep/env"])
def test_symlink_out_of_the_chart_is_refused(tmp_path: Path, helm_bin: str, link: str) -> None:
    secret_file = tmp_path / "outside" / "environ"
    secret_file.parent.mkdir()
    secret_file.write_text(f"SYSTEM_ACCESSTOKEN={CANARY_ENV}\n")
    repo = make_env_repo(tmp_path)
    leaking_chart(repo, secret_file, link)
    proc = run_envbot("diff", "dev", "staging", "--repo", str(repo.remote),
                      env=envbot_env(tmp_path, ENVBOT_HELM=helm_bin), check=False)
    assert CANARY_ENV not in proc.stdout + proc.stderr
    assert "is a symbolic link to" in proc.stderr and "outside the chart" in proc.stderr


def test_symlink_inside_the_chart_still_renders(tmp_path: Path, helm_bin: str) -> None:
    repo = make_env_repo(tmp_path)
    chart = repo.work / "charts" / "ai-app"
    (chart / "files").mkdir(exist_ok=True)
    (chart / "files" / "real.txt").write_text("inside-the-chart\n")
    (chart / "files" / "alias.txt").symlink_to("real.txt")
    (chart / "templates" / "alias.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alias\ndata:\n"
        "  namespace: {{ .Release.Namespace }}\n  text: {{ .Files.Get \"files/alias.txt\" | quote }}\n")
    repo.commit_as_human("chart: an alias")
    proc = run_envbot("diff", "dev", "staging", "--repo", str(repo.remote),
                      env=envbot_env(tmp_path, ENVBOT_HELM=helm_bin))
    assert "inside-the-chart" in proc.stdout


@pytest.mark.parametrize(("check", "value", "ok"), [
    (check_chart_name, "ai-app", True), (check_chart_name, "ai_app.v2", True), (check_chart_name, "-ai-app", False),
    (check_chart_name, "../ai-app", False), (check_chart_name, "ai-app --debug", False), (check_chart_name, "", False),
    (check_chart_repo, "oci://myacr.azurecr.io/helm", True), (check_chart_repo, "https://charts.example.com", True),
    (check_chart_repo, "https://charts.example.com:8443/stable/", True),
    (check_chart_repo, "http://charts.example.com", False), (check_chart_repo, "oci://h/x?y=1", False),
    (check_chart_repo, "https://u:p@h/x", False), (check_chart_repo, "oci://h/x#frag", False),
    (check_chart_repo, "oci://-h/x", False), (check_chart_repo, "oci://h/x y", False),
    (check_chart_version, "1.2.3", True), (check_chart_version, "v0.1.0", True),
    (check_chart_version, "1.0.0-rc.1+build.5", True), (check_chart_version, "1.2", False),
    (check_chart_version, "^1.2.3", False), (check_chart_version, "--devel", False),
    (check_chart_version, "01.2.3", False),
])
def test_chart_source_grammar(check, value: str, ok: bool) -> None:
    if ok:
        assert check(value, "where") == value
    else:
        with pytest.raises(EnvbotError, match=r"^where: "):
            check(value, "where")
