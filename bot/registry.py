"""Image references -> digests and labels, through the OCI distribution API (/v2) of the registry.

ACR (*.azurecr.io, and the sovereign clouds' suffixes) is reached with DefaultAzureCredential; any other
registry over TLS anonymously (REQUESTS_CA_BUNDLE trusts a private CA). Which host gets the credential is
app.credential_scope's rule, applied to the registry host named in the reference, which must be a plain
host[:port] (no path, query or fragment that could send the request elsewhere).
Only /v2 calls are used: the ACR-only /acr/v1 APIs (manifest properties, tag listing) do not exist on
other registries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app.credential_scope import ACR, credential_refusal
from bot.errors import EnvbotError, Unreachable
from bot.output import progress

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The reference grammar's domain: DNS labels or a bracketed IPv6 address, and an optional port.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY_HOST = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?$")
REVISION_LABEL = "org.opencontainers.image.revision"
SOURCE_LABEL = "org.opencontainers.image.source"
ACR_AUDIENCE = "https://management.azure.com"
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class ImageRef:
    registry: str                # host[:port]
    repository: str              # path inside the registry
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class ResolvedImage:
    ref: ImageRef
    digest: str
    labels: dict[str, str]


def parse_image_ref(text: str) -> ImageRef:
    """registry/repo:tag, registry/repo@sha256:..., or registry/repo:tag@sha256:... (both must then agree)."""
    rest, _, digest = text.strip().partition("@")
    if digest and not DIGEST.match(digest):
        raise EnvbotError(f"image {text!r}: {digest!r} is not a sha256:<64 hex> digest")
    slash = rest.find("/")
    first = rest[:slash] if slash > 0 else ""
    if not first or not ("." in first or ":" in first or first == "localhost"):
        raise EnvbotError(f"image {text!r}: name the registry (e.g. myregistry.azurecr.io/ai-app:TAG)")
    if not _REGISTRY_HOST.match(first):
        raise EnvbotError(f"image {text!r}: {first!r} is not a registry host[:port]")
    path = rest[slash + 1:]
    tag = ""
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if not path or not re.match(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$", path):
        raise EnvbotError(f"image {text!r}: {path!r} is not a valid repository name")
    if not tag and not digest:
        raise EnvbotError(f"image {text!r}: give a tag or a digest (repo:tag, repo@sha256:...)")
    if tag and not re.match(r"^[\w][\w.-]{0,127}$", tag):
        raise EnvbotError(f"image {text!r}: {tag!r} is not a valid tag")
    return ImageRef(first, path, tag, digest)


def _client(registry: str) -> Any:
    from azure.containerregistry import ContainerRegistryClient

    if not _REGISTRY_HOST.match(registry):
        raise EnvbotError(f"{registry!r} is not a registry host[:port]")
    endpoint = f"https://{registry}"
    if credential_refusal(ACR, registry) is None:
        from azure.identity import DefaultAzureCredential

        return ContainerRegistryClient(endpoint, DefaultAzureCredential(), audience=ACR_AUDIENCE)
    return ContainerRegistryClient(endpoint, None, audience=ACR_AUDIENCE)


class RegistryClient:
    """One SDK client per registry host, reused across lookups of a command."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def _for(self, registry: str) -> Any:
        if registry not in self._clients:
            self._clients[registry] = _client(registry)
        return self._clients[registry]

    def manifest(self, ref: ImageRef, reference: str) -> tuple[str, dict]:
        """(digest, manifest) of REFERENCE (tag or digest); EnvbotError when missing or unreachable."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        shown = f"{ref.name}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        progress(f"looking up {shown} in the registry")
        try:
            result = self._for(ref.registry).get_manifest(ref.repository, reference)
        except ResourceNotFoundError as exc:
            raise EnvbotError(f"{shown} is not in the registry {ref.registry}") from exc
        except (AzureError, ValueError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "404" in message or "MANIFEST_UNKNOWN" in message or "NAME_UNKNOWN" in message:
                raise EnvbotError(f"{shown} is not in the registry {ref.registry}") from exc
            raise Unreachable(f"registry {ref.registry}: {message}") from exc
        manifest = result.manifest if isinstance(result.manifest, dict) else json.loads(result.manifest)
        return result.digest, manifest

    def digest(self, ref: ImageRef) -> str:
        """Digest the tag (or digest) of REF points at now; checks that tag and digest agree."""
        digest, _ = self.manifest(ref, ref.tag or ref.digest)
        if ref.tag and ref.digest and digest != ref.digest:
            raise EnvbotError(f"image {ref}: tag {ref.tag} points at {digest}, not {ref.digest}")
        return digest

    def resolve(self, ref: ImageRef) -> ResolvedImage:
        digest, manifest = self.manifest(ref, ref.tag or ref.digest)
        if ref.tag and ref.digest and digest != ref.digest:
            raise EnvbotError(f"image {ref}: tag {ref.tag} points at {digest}, not {ref.digest}")
        return ResolvedImage(ref, digest, self._labels(ref, manifest))

    def _labels(self, ref: ImageRef, manifest: dict) -> dict[str, str]:
        if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
            entries = manifest.get("manifests") or []
            chosen = next((m for m in entries if (m.get("platform") or {}).get("architecture") == "amd64"
                           and (m.get("platform") or {}).get("os") == "linux"), entries[0] if entries else None)
            if chosen is None:
                return {}
            _, manifest = self.manifest(ref, chosen["digest"])
        config = manifest.get("config") or {}
        if not config.get("digest"):
            return {}
        from azure.core.exceptions import AzureError

        try:
            stream = self._for(ref.registry).download_blob(ref.repository, config["digest"])
            blob = b"".join(stream)
        except (AzureError, OSError, ValueError):
            return {}   # labels only feed the changelog; their absence is reported there
        try:
            return dict((json.loads(blob).get("config") or {}).get("Labels") or {})
        except ValueError:
            return {}
