"""The chart as an OCI artifact: parse a chart reference, check a pin against the registry, fetch it by digest.

CI pushes `charts/ai-app` with `helm push` as oci://<registry>/helm/ai-app:<version> (version scheme:
docs/architecture.md, "The chart is a versioned artifact"). An environment pins the chart's OCI
repository, version and manifest digest in <env>/chart.yaml; envbot renders with exactly that
artifact: `helm pull` by digest, cached by digest, its Chart.yaml version checked against the pin.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.output import EnvbotError, progress
from bot.policy import ChartSource
from bot.registry import DIGEST, ImageRef, RegistryClient
from bot.values import ChartPin

# Helm's OCI config media type: a manifest with another config is not a chart.
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
# An OCI tag (no "+": helm would push 1.0.0+x as 1.0.0_x, which Argo CD does not map back) that is SemVer 2.
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                      r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")


def check_version(version: str, where: str) -> None:
    if "+" in version:
        raise EnvbotError(f"{where}: chart version {version!r} has SemVer build metadata ('+'), which an OCI tag "
                          f"cannot carry; use a pre-release part (e.g. 0.1.0-42.gabc123)")
    if len(version) > 128 or not _VERSION.match(version):
        raise EnvbotError(f"{where}: {version!r} is not a SemVer 2 chart version usable as an OCI tag")


def oci_location(repository: str, where: str) -> ImageRef:
    """oci://host[:port]/path/name -> the registry host and repository path (validated)."""
    if not repository.startswith("oci://"):
        raise EnvbotError(f"{where}: chart repository {repository!r} must start with oci://")
    host, _, path = repository[len("oci://"):].partition("/")
    if not host or not _HOST.match(host) or not ("." in host or ":" in host or host == "localhost"):
        raise EnvbotError(f"{where}: chart repository {repository!r} does not name a registry host")
    if not path or not _REPOSITORY.match(path):
        raise EnvbotError(f"{where}: {path!r} is not a valid OCI repository path")
    return ImageRef(host, path)


def parse_chart_ref(text: str) -> ChartPin:
    """oci://host/path/name:VERSION[@sha256:...] (what CI prints after `helm push`)."""
    rest, _, digest = text.strip().partition("@")
    if digest and not DIGEST.match(digest):
        raise EnvbotError(f"chart {text!r}: {digest!r} is not a sha256:<64 hex> digest")
    head, _, last = rest.rpartition("/")
    name, colon, version = last.partition(":")
    if not head or not colon or not version:
        raise EnvbotError(f"chart {text!r}: expected oci://<registry>/<path>/<chart>:<version>[@sha256:<hex>]")
    pin = ChartPin(f"{head}/{name}", version, digest)
    oci_location(pin.repository, f"chart {text!r}")
    check_version(version, f"chart {text!r}")
    return pin


def resolve_chart(pin: ChartPin, registry: RegistryClient, where: str = "chart") -> ChartPin:
    """PIN with the digest its version tag points at; when PIN has a digest it must be that one and exist.

    One line for each failure: an unreachable registry, a version that is not there, a digest that is
    not there, a tag that moved off the pinned digest, an artifact that is not a Helm chart.
    """
    location = oci_location(pin.repository, where)
    check_version(pin.version, where)
    if pin.digest:
        _, manifest = registry.manifest(location, pin.digest)
        _require_chart(manifest, f"{pin.repository}@{pin.digest}")
    digest, manifest = registry.manifest(location, pin.version)
    _require_chart(manifest, f"{pin.repository}:{pin.version}")
    if pin.digest and digest != pin.digest:
        raise EnvbotError(f"{where}: {pin.repository}:{pin.version} points at {digest}, not the pinned "
                          f"{pin.digest} (a chart version must never be re-pushed)")
    return ChartPin(pin.repository, pin.version, digest)


def _require_chart(manifest: dict, shown: str) -> None:
    media_type = (manifest.get("config") or {}).get("mediaType")
    if media_type != HELM_CONFIG_MEDIA_TYPE:
        raise EnvbotError(f"{shown} is not a Helm chart (config media type {media_type!r})")


def cache_dir() -> Path:
    base = os.environ.get("ENVBOT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "envbot")
    return Path(base) / "charts"


def check_allowed(pin: ChartPin, allowed: ChartSource, where: str) -> None:
    """A pin must name the chart repository promotion.yaml names (apps.<app>.chart repo + name), when it
    names one: a pull request cannot point an environment, or its render, at a registry of its own."""
    if allowed.repo and allowed.name:
        expected = f"{str(allowed.repo).rstrip('/')}/{allowed.name}"
        if pin.repository != expected:
            raise EnvbotError(f"{where}: chart {pin.repository} is not the chart promotion.yaml allows "
                              f"({expected})")


def fetch_chart(pin: ChartPin, where: str = "chart") -> Path:
    """The chart package of PIN on disk: pulled by digest (so exactly the pinned bits), cached by digest."""
    from bot import helm

    if not pin.digest or not DIGEST.match(pin.digest):
        raise EnvbotError(f"{where}: the chart pin has no sha256 digest; pin one with envbot update --chart")
    oci_location(pin.repository, where)
    check_version(pin.version, where)
    cached = cache_dir() / f"{pin.digest.split(':', 1)[1]}.tgz"
    if cached.is_file():
        _check_package(cached, pin, where)
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="envbot-chart-", dir=cached.parent) as tmp:
        # The CA envbot's registry calls trust (REQUESTS_CA_BUNDLE), given to helm as well.
        progress(f"pulling chart {pin.repository}@{pin.digest[:19]}")
        proc = helm.pull(f"{pin.repository}@{pin.digest}", Path(tmp), os.environ.get("REQUESTS_CA_BUNDLE"))
        if proc.returncode != 0:
            message = (proc.stderr.strip().splitlines() or ["failed"])[-1].removeprefix("Error: ")
            raise EnvbotError(f"{where}: cannot pull chart {pin.repository}@{pin.digest}: {message}")
        packages = list(Path(tmp).glob("*.tgz"))
        if len(packages) != 1:
            raise EnvbotError(f"{where}: helm pull of {pin.repository}@{pin.digest} gave no chart package")
        _check_package(packages[0], pin, where)
        os.replace(packages[0], cached)   # atomic: a concurrent envbot never reads half a package
    return cached


def _check_package(package: Path, pin: ChartPin, where: str) -> None:
    """The package's Chart.yaml names the pinned chart and version (the tag is not trusted for that)."""
    name = pin.repository.rstrip("/").rsplit("/", 1)[-1]
    try:
        with tarfile.open(package) as tar:
            member = tar.extractfile(f"{name}/Chart.yaml")
            chart = YAML(typ="safe").load(member.read()) if member is not None else None
    except (tarfile.TarError, KeyError, OSError, YAMLError) as exc:
        raise EnvbotError(f"{where}: {pin.repository}@{pin.digest} is not a chart package named {name}: {exc}"
                          ) from exc
    if not isinstance(chart, dict) or str(chart.get("name")) != name or str(chart.get("version")) != pin.version:
        found = f"{chart.get('name')} {chart.get('version')}" if isinstance(chart, dict) else "no Chart.yaml"
        raise EnvbotError(f"{where}: {pin.repository}@{pin.digest} holds chart {found}, not {name} {pin.version}")

