"""docs/bootstrap-aks.md as a path on an empty subscription (issue 13, finding 6): every `az` command
uses options the Azure CLI has (tests/pipelines/fixtures/az/commands.json, recorded from the CLI
reference), and what the environments need on a fresh cluster is created, with the names the files use,
before Argo CD syncs anything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.pipelines.azure_schema import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "bootstrap-aks.md").read_text()
COMMANDS = json.loads((Path(__file__).parent / "fixtures" / "az" / "commands.json").read_text())


def values(env: str) -> dict:
    return YAML(typ="safe").load((REPO_ROOT / "environments" / env / "values.yaml").read_text())


def bash_blocks(text: str) -> list[str]:
    """The doc's bash code blocks, continuation lines joined."""
    return [block.replace("\\\n", " ") for block in re.findall(r"```bash[^\n]*\n(.*?)```", text, re.S)]


def az_invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, options) of every `az ...` in the bash blocks, `$( ... )` substitutions included."""
    found = []
    for block in bash_blocks(text):
        for line in block.splitlines():
            line = line.split(" #", 1)[0]
            for segment in re.split(r"\$\(|\)|\|\||\||&&|;", line):
                match = re.search(r"(?:^|\s)az\s+(.*)", segment)
                if not match:
                    continue
                words = match.group(1).split()
                command = []
                for word in words:
                    if word.startswith("-") or not re.fullmatch(r"[a-z0-9-]+", word):
                        break
                    command.append(word)
                options = [w.split("=", 1)[0] for w in words[len(command):]
                           if re.fullmatch(r"--?[a-z][-a-z]*(=.*)?", w)]
                found.append((" ".join(command), options))
    return found


def known_command(command: str) -> str:
    """The recorded command COMMAND starts with (az commands take positional values after the verb)."""
    matches = [c for c in COMMANDS if not c.startswith("_") and (command == c or command.startswith(c + " "))]
    if not matches:
        raise AssertionError(f"`az {command}` is not in the recorded commands (add it from the CLI reference)")
    return max(matches, key=len)


def test_the_doc_uses_az() -> None:
    commands = {known_command(c) for c, _ in az_invocations(DOC)}
    assert {"aks create", "aks nodepool add", "identity federated-credential create", "repos create"} <= commands


@pytest.mark.parametrize(("command", "options"), az_invocations(DOC))
def test_every_az_option_exists(command: str, options: list[str]) -> None:
    allowed = set(COMMANDS[known_command(command)]) | set(COMMANDS["_global"])
    unknown = [o for o in options if o not in allowed]
    assert not unknown, f"`az {command}`: no such option(s) {unknown}"


def test_az_parser_sees_substitutions() -> None:
    text = '```bash\nX=$(az aks show -g "$RG" -n "$AKS" --query id -o tsv)\naz acr create --bogus x\n```\n'
    assert az_invocations(text) == [("aks show", ["-g", "-n", "--query", "-o"]), ("acr create", ["--bogus"])]


def position(pattern: str) -> int:
    match = re.search(pattern, DOC)
    assert match, f"docs/bootstrap-aks.md has no {pattern!r}"
    return match.start()


def test_oidc_issuer_and_workload_identity() -> None:
    create = next(o for c, o in az_invocations(DOC) if c == "aks create")
    assert {"--enable-oidc-issuer", "--enable-workload-identity"} <= set(create)
    assert "--issuer \"$OIDC_ISSUER\"" in DOC and "system:serviceaccount:ai-app-$env:ai-app" in DOC


def test_the_inference_node_pool_matches_prods_selector_and_toleration() -> None:
    prod = values("prod")
    (key, value), = prod["nodeSelector"].items()
    toleration, = prod["tolerations"]
    nodepool = next(line for block in bash_blocks(DOC) for line in block.splitlines() if "az aks nodepool add" in line)
    assert f"--labels {key}={value}" in nodepool
    assert f"--node-taints {toleration['key']}={toleration['value']}:{toleration['effect']}" in nodepool
    minimum = prod["autoscaling"]["minReplicas"]
    assert re.search(r"--min-count (\d+)", nodepool) and int(re.search(r"--min-count (\d+)", nodepool)[1]) >= minimum


def test_the_prometheus_operator_is_installed_where_the_chart_expects_it() -> None:
    chart = YAML(typ="safe").load((REPO_ROOT / "charts" / "ai-app" / "values.yaml").read_text())
    monitoring_namespace = chart["networkPolicy"]["monitoringNamespace"]
    commands = "\n".join(bash_blocks(DOC))
    for env in ("staging", "prod"):
        monitor = values(env)["metrics"]["serviceMonitor"]
        assert monitor["enabled"]
        release = monitor["labels"]["release"]
        assert re.search(rf"helm upgrade --install {release} prometheus-community/kube-prometheus-stack\s+"
                         rf"--namespace {monitoring_namespace}", commands), env
    sync = position(r"kubectl apply -n argocd -f environments/argocd/applicationset")
    assert position(r"kube-prometheus-stack") < sync


def test_cert_manager_issues_what_the_ingresses_ask_for() -> None:
    for env in ("staging", "prod"):
        ingress = values(env)["ingress"]
        issuer = ingress["annotations"]["cert-manager.io/cluster-issuer"]
        assert ingress["tls"]
        assert re.search(rf"kind: ClusterIssuer\nmetadata:\n  name: {issuer}\n", DOC), env
    assert "jetstack/cert-manager" in DOC and "crds.enabled=true" in DOC
    assert "No TLS" in DOC     # the explicit alternative


def test_the_first_release_comes_before_the_first_sync() -> None:
    sync = position(r"kubectl apply -n argocd -f environments/argocd/applicationset\.yaml")
    assert position(r"az pipelines run --name azure-pipelines --branch main") < sync
    assert position(r'envbot update "\$env" --repo "\$ENV_URL"') < sync
    assert position(r"envbot verify") < sync
    assert "for env in staging prod" in DOC


def test_the_pipelines_created_are_the_pipeline_files() -> None:
    for pipeline in ("azure-pipelines.yml", "pipelines/environments-pr.yml", "pipelines/model-watch.yml"):
        assert (REPO_ROOT / pipeline).is_file()
        assert pipeline in DOC
