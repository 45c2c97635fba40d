"""Which hosts may receive which ambient credential: the one rule for Blob, S3 and registries.

Model URIs and image references come from values files, command lines and pipelines, i.e. from
people who do not hold the credentials the code runs with (a workload identity, CI's service
connection, AWS keys). An ambient credential therefore goes only to a host that belongs to the
service that issued it, or to a host an operator listed explicitly:

- DefaultAzureCredential (Blob): `<account>.blob.core.windows.net` and the sovereign clouds'
  suffixes (and Azure Storage's DNS-zone endpoints `<account>.zNN.blob.storage.azure.net`), or an
  account URL listed in MODELSTORE_AZURE_ACCOUNT_URLS. Emulators and loopback endpoints (Azurite)
  are reached only with a connection string, which names its own endpoint.
- DefaultAzureCredential (ACR): `<registry>.azurecr.io` and the sovereign suffixes, or a registry
  host listed in ENVBOT_REGISTRY_CREDENTIAL_HOSTS.
- AWS credentials: `*.amazonaws.com` / `*.amazonaws.com.cn`, the endpoint the operator configured
  (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), or an endpoint listed in MODELSTORE_S3_ENDPOINTS.
Allowlists are comma-separated; an entry is compared as scheme://host[:port] (a URL) or host[:port].
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# Host suffixes of the Blob service in the public cloud, Azure China, Azure US Government, Azure Germany.
AZURE_BLOB_SUFFIXES = ("blob.core.windows.net", "blob.core.chinacloudapi.cn", "blob.core.usgovcloudapi.net",
                       "blob.core.cloudapi.de")
AZURE_ACCOUNT = r"[a-z0-9]{3,24}"
# <account>.blob.core.windows.net, or the DNS-zone endpoint <account>.z12.blob.storage.azure.net.
AZURE_BLOB_HOST = re.compile(
    rf"^(?P<account>{AZURE_ACCOUNT})\.(?:{'|'.join(re.escape(s) for s in AZURE_BLOB_SUFFIXES)}"
    rf"|z\d{{2}}\.blob\.storage\.azure\.net)$"
)
ACR_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.azurecr\.(?:io|cn|us)$")
AWS_HOST = re.compile(r"^(?:[a-z0-9.-]+\.)?amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class CredentialScope:
    credential: str              # what is at stake, for messages
    owner_hosts: re.Pattern[str]  # hosts of the service that issued the credential
    allowlist_var: str           # operator's explicit additions
    configured_vars: tuple[str, ...] = ()  # endpoints the operator set for this client (trusted as listed)


AZURE_BLOB = CredentialScope("DefaultAzureCredential (storage)", AZURE_BLOB_HOST, "MODELSTORE_AZURE_ACCOUNT_URLS")
ACR = CredentialScope("DefaultAzureCredential (container registry)", ACR_HOST, "ENVBOT_REGISTRY_CREDENTIAL_HOSTS")
AWS_S3 = CredentialScope("AWS credentials", AWS_HOST, "MODELSTORE_S3_ENDPOINTS",
                         ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))


def _origin(text: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL or of host[:port]; None when it is not one."""
    value = text.strip()
    if "://" not in value:
        value = f"https://{value}"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def _listed(scope: CredentialScope, scheme: str, host: str, port: int | None, path: str) -> bool:
    entries = [e for e in os.environ.get(scope.allowlist_var, "").split(",") if e.strip()]
    entries += [os.environ[v] for v in scope.configured_vars if os.environ.get(v, "").strip()]
    for entry in entries:
        origin = _origin(entry)
        if origin is None:
            continue
        entry_path = urlsplit(entry.strip()).path.rstrip("/") if "://" in entry else ""
        if origin == (scheme, host, port) and (not entry_path or path.rstrip("/") == entry_path):
            return True
    return False


def credential_refusal(scope: CredentialScope, url: str) -> str | None:
    """Why SCOPE's credential must not be sent to URL (an https URL or host[:port]); None when it may."""
    origin = _origin(url)
    if origin is None:
        return f"refusing to send {scope.credential} to {url!r}: not a host name"
    scheme, host, port = origin
    path = urlsplit(url if "://" in url else f"https://{url}").path
    if _listed(scope, scheme, host, port, path):
        return None
    if scheme != "https":
        return f"refusing to send {scope.credential} to {scheme}://{host}: only over https"
    if scope.owner_hosts.match(host) and port in (None, 443):
        return None
    return (f"refusing to send {scope.credential} to {host}{f':{port}' if port else ''}: not a host of the "
            f"service that issued it (an operator may list it in {scope.allowlist_var})")
