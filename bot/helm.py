"""helm, run so that what a pull request writes stays data: the one place envbot starts helm.

An environments-repo pull request controls promotion.yaml (chart repo, name, version, path), the
values and the chart's files, and the PR pipeline renders them before anyone reviews. So:
- chart name, repository and version are checked against their grammars (a name like
  `--post-renderer=/bin/sh` is refused, not passed on), every option is written `--opt=value`, and
  positional arguments come after `--`, which ends helm's (pflag's) option parsing;
- a chart path must resolve inside the repository, and the chart may hold no symbolic link that
  leaves the chart directory (`.Files.Get` follows links: files/env -> /proc/self/environ);
- helm runs with an allowlisted environment: no tokens, no cloud credentials, a throwaway HOME and
  HELM_* directories, so neither the user's plugins (helm 4 post-renderers are plugins) nor their
  registry logins are reachable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bot.output import EnvbotError
from bot.policy import ChartSource
from bot.urls import redact

# Chart names: lower-case letters, digits, '-', '_' and '.', starting with a letter or digit
# (helm's best-practice grammar; helm itself forbids path separators).
CHART_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
# Release names and namespaces (helm's own release-name check, DNS-1123 subdomain, 53 characters).
RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# SemVer 2.0.0 (semver.org's regular expression), with helm's tolerated leading "v".
SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
# oci://host[:port]/path or https://host[:port][/path]: no userinfo, query, fragment or odd characters.
CHART_REPO = re.compile(r"^(?P<scheme>oci|https)://(?P<host>[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>\d{1,5}))?"
                        r"(?P<path>(?:/[A-Za-z0-9._~-]+)*)/?$")
# Variables helm may see: nothing that holds a secret. Proxies and CA bundles are connectivity, not identity.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
                 "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")
# An explicit registry login file for private chart registries (helm sends each login only to its host).
REGISTRY_CONFIG_VAR = "ENVBOT_HELM_REGISTRY_CONFIG"
TIMEOUT_SECONDS = 300


def helm_binary() -> str:
    """ENVBOT_HELM, else helm on PATH, else the helm installed beside envbot's Python (`.venv/bin`,
    where scripts/bootstrap puts it), so `.venv/bin/envbot` works without the venv on PATH."""
    binary = os.environ.get("ENVBOT_HELM") or shutil.which("helm")
    if binary:
        return binary
    beside = Path(sys.executable).parent / "helm"
    if os.access(beside, os.X_OK):
        return str(beside)
    raise EnvbotError(f"helm is not installed: put helm on PATH, set ENVBOT_HELM, or install it in {beside.parent}")


def check_chart_name(name: str, where: str) -> str:
    if not CHART_NAME.match(name):
        raise EnvbotError(f"{where}: {name!r} is not a chart name (lower-case letters, digits, '-', '_', '.'; "
                          f"starting with a letter or digit)")
    return name


def check_chart_repo(repo: str, where: str) -> str:
    match = CHART_REPO.match(repo)
    if not match:
        raise EnvbotError(f"{where}: {redact(repo)!r} is not a chart repository: use oci://host/path or "
                          f"https://host/path (no credentials, query or fragment in the URL)")
    if match["port"] and not 0 < int(match["port"]) < 65536:
        raise EnvbotError(f"{where}: {redact(repo)!r} has an invalid port")
    return repo


def check_chart_version(version: str, where: str) -> str:
    if not SEMVER.match(version):
        raise EnvbotError(f"{where}: {version!r} is not a SemVer version (e.g. 1.4.2); pin an exact version")
    return version


def check_release(release: str, namespace: str, where: str) -> None:
    if len(release) > 53 or not RELEASE_NAME.match(release):
        raise EnvbotError(f"{where}: app name {release!r} is not a valid helm release name")
    if not NAMESPACE.match(namespace):
        raise EnvbotError(f"{where}: namespace {namespace!r} is not a valid Kubernetes namespace")


def check_chart_tree(chart: Path, repo_root: Path, where: str) -> Path:
    """CHART resolved; it must lie inside REPO_ROOT and hold no symbolic link leading out of itself."""
    root = repo_root.resolve()
    resolved = chart.resolve()
    if not resolved.is_relative_to(root):
        raise EnvbotError(f"{where}: the chart {chart} resolves to {resolved}, outside the repository")
    if not (resolved / "Chart.yaml").is_file():
        raise EnvbotError(f"{where}: {chart} has no Chart.yaml (the chart must be in the environments repo, "
                          f"or use chart.repo)")
    for directory, dirs, files in os.walk(resolved, followlinks=False):
        for entry in (*dirs, *files):
            path = Path(directory, entry)
            if not path.is_symlink():
                continue
            target = path.resolve()
            if not target.is_relative_to(resolved) or not target.exists():
                raise EnvbotError(f"{where}: {path.relative_to(root)} is a symbolic link to "
                                  f"{os.readlink(path)}, outside the chart: refusing to render")
    return resolved


def chart_args(chart: ChartSource, policy_root: Path, repo_root: Path, where: str) -> tuple[list[str], str]:
    """(options, chart) for `helm template`: validated, options in --opt=value form."""
    if chart.path:
        return [], str(check_chart_tree(policy_root / chart.path, repo_root, f"{where}.path"))
    if chart.repo and chart.name:
        repo = check_chart_repo(str(chart.repo), f"{where}.repo")
        name = check_chart_name(str(chart.name), f"{where}.name")
        options = [f"--version={check_chart_version(str(chart.version), f'{where}.version')}"] if chart.version else []
        if repo.startswith("oci://"):
            return options, f"{repo.rstrip('/')}/{name}"
        return [f"--repo={repo}", *options], name
    raise EnvbotError(f"{where} needs path, or repo and name")


def scrubbed_env(home: Path) -> dict[str, str]:
    """The environment helm runs with: the allowlist, plus HOME and every HELM_* directory under HOME."""
    env = {key: os.environ[key] for key in ENV_ALLOWLIST if key in os.environ}
    env |= {
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_PLUGINS": str(home / "plugins"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
        "HELM_REGISTRY_CONFIG": os.environ.get(REGISTRY_CONFIG_VAR) or str(home / "config" / "registry.json"),
    }
    return env


def run_helm(command: Sequence[str], options: Sequence[str], positional: Sequence[str],
             timeout: float = TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
    """`helm COMMAND OPTIONS -- POSITIONAL` with a scrubbed environment in a throwaway HOME."""
    for option in options:
        if not option.startswith("--") or "=" not in option:
            raise EnvbotError(f"internal: helm option {option!r} must be written --name=value")
    with tempfile.TemporaryDirectory(prefix="envbot-helm-") as home:
        cmd = [helm_binary(), *command, *options, "--", *positional]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=home,
                                  env=scrubbed_env(Path(home)), timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise EnvbotError(f"helm {' '.join(command)} did not finish within {timeout:.0f} s") from exc


def template(chart: ChartSource, policy_root: Path, repo_root: Path, release: str, namespace: str,
             values_file: Path, where: str) -> subprocess.CompletedProcess[str]:
    """`helm template RELEASE CHART` with VALUES_FILE in NAMESPACE; WHERE names the chart setting in errors."""
    check_release(release, namespace, where)
    options, chart_ref = chart_args(chart, policy_root, repo_root, where)
    return run_helm(["template"], [*options, f"--namespace={namespace}", f"--values={values_file}"],
                    [release, chart_ref])


def template_package(package: Path, release: str, namespace: str, values_file: Path,
                     where: str) -> subprocess.CompletedProcess[str]:
    """`helm template RELEASE PACKAGE`: a chart package envbot pulled by digest (bot/charts.py)."""
    check_release(release, namespace, where)
    return run_helm(["template"], [f"--namespace={namespace}", f"--values={values_file}"], [release, str(package)])


def pull(reference: str, destination: Path, ca_file: str | None) -> subprocess.CompletedProcess[str]:
    """`helm pull REFERENCE` (oci://host/path/chart@sha256:...) into DESTINATION, trusting CA_FILE if given."""
    options = [f"--destination={destination}"] + ([f"--ca-file={ca_file}"] if ca_file else [])
    return run_helm(["pull"], options, [reference])
