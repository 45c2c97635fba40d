"""Azure Blob Storage backend (also Azurite): conditional uploads, streamed ranged downloads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings

from app.credential_scope import AZURE_BLOB, credential_refusal
from app.modelstore.backend import CONNECT_TIMEOUT, READ_TIMEOUT, StoredObject
from app.modelstore.errors import ModelExists, ModelNotFound, ModelStoreError, TransientError
from app.modelstore.uri import ModelUri

CONNECTION_STRING_VAR = "AZURE_STORAGE_CONNECTION_STRING"
# Ranged GETs of 8 MiB: few enough requests to keep up with a plain SDK download, small enough
# that a retry after a dropped connection re-fetches little and memory stays bounded.
CHUNK_BYTES = 8 * 1024 * 1024
# Uploads above this go as parallel 8 MiB blocks committed at the end.
UPLOAD_CONCURRENCY = 4
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def _client_options(client_retries: bool) -> dict[str, object]:
    options: dict[str, object] = {
        "max_single_get_size": CHUNK_BYTES,
        "max_chunk_get_size": CHUNK_BYTES,
        "max_block_size": CHUNK_BYTES,
        "max_single_put_size": CHUNK_BYTES,
        "connection_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
    }
    if client_retries:
        # The SDK's default backoff starts at 15 s; a CLI run should not stall that long on a blip.
        options.update(retry_total=4, initial_backoff=1, increment_base=2)
    else:
        options["retry_total"] = 0
    return options


def service_client(location: ModelUri, *, client_retries: bool = True) -> BlobServiceClient:
    """A client for the model's storage account: shared key from AZURE_STORAGE_CONNECTION_STRING, else
    DefaultAzureCredential."""
    options = _client_options(client_retries)
    connection_string = os.environ.get(CONNECTION_STRING_VAR, "").strip()
    if connection_string:
        try:
            service = BlobServiceClient.from_connection_string(connection_string, **options)
        except ValueError as exc:
            raise ModelStoreError(f"{CONNECTION_STRING_VAR} is not a valid connection string: {exc}") from None
        if service.url.rstrip("/") != location.account_url:
            raise ModelStoreError(
                f"{location.uri}: {CONNECTION_STRING_VAR} is for {service.url.rstrip('/')}, "
                f"not {location.account_url}"
            )
        return service
    # Workload identity in AKS, a managed identity on a VM, or `az login` on a laptop: a token that
    # reaches every blob the identity may read, so only the storage service's own hosts get it.
    refusal = credential_refusal(AZURE_BLOB, location.account_url)
    if refusal:
        raise ModelStoreError(f"{location.uri}: {refusal}; an emulator or any other endpoint is reached "
                              f"only with {CONNECTION_STRING_VAR}")
    from azure.identity import DefaultAzureCredential

    return BlobServiceClient(location.account_url, credential=DefaultAzureCredential(), **options)


def blob_client(location: ModelUri, *, client_retries: bool = True) -> BlobClient:
    """A client for the model blob, authenticated as service_client() says."""
    return service_client(location, client_retries=client_retries).get_blob_client(location.container, location.key)


@contextmanager
def _translated(location: ModelUri, action: str) -> Iterator[None]:
    """Map SDK exceptions to the model store's, keeping the service's message."""
    where = f"{location.uri}: {action}"
    try:
        yield
    except ResourceNotFoundError as exc:
        raise ModelNotFound(f"{where}: not found ({getattr(exc, 'error_code', None) or exc.reason})") from None
    except ResourceExistsError as exc:
        raise ModelExists(f"{where}: already exists ({getattr(exc, 'error_code', None) or exc.reason})") from None
    except ClientAuthenticationError as exc:
        raise ModelStoreError(f"{where}: authentication failed: {exc.message}") from None
    except IncompleteReadError as exc:
        raise TransientError(f"{where}: connection closed mid-download: {exc.message}") from None
    except HttpResponseError as exc:
        if exc.status_code is None:  # no response: the connection broke (the SDK's own chunk retries ran out)
            raise TransientError(f"{where}: {exc.message}") from None
        if exc.status_code in _TRANSIENT_STATUS:
            raise TransientError(f"{where}: HTTP {exc.status_code} {exc.reason}") from None
        raise ModelStoreError(f"{where}: HTTP {exc.status_code} {exc.reason}: {exc.message}") from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientError(f"{where}: {exc.message}") from None
    except AzureError as exc:
        raise ModelStoreError(f"{where}: {exc.message}") from None
    except (ConnectionError, TimeoutError) as exc:
        raise TransientError(f"{where}: {exc}") from None


class AzureBlobBackend:
    def __init__(self, location: ModelUri, *, client_retries: bool = True) -> None:
        self.location = location
        self._client = blob_client(location, client_retries=client_retries)

    def stat(self) -> StoredObject:
        with _translated(self.location, "get properties"):
            properties = self._client.get_blob_properties()
        metadata = properties.metadata or {}
        return StoredObject(size=properties.size, sha256=metadata.get("sha256"),
                            card_sha256=metadata.get("card_sha256"))

    def upload(self, path: Path, sha256: str, metadata: dict[str, str] | None = None) -> None:
        with _translated(self.location, "upload"), path.open("rb") as data:
            # overwrite=False sends If-None-Match: * (also on the final block-list commit), so two
            # publishers racing for one version cannot both win.
            self._client.upload_blob(
                data,
                length=path.stat().st_size,
                overwrite=False,
                metadata={**(metadata or {}), "sha256": sha256},
                content_settings=ContentSettings(content_type="application/octet-stream"),
                max_concurrency=UPLOAD_CONCURRENCY,
            )

    def read(self, offset: int) -> Iterator[bytes]:
        with _translated(self.location, f"download from byte {offset}"):
            yield from self._client.download_blob(offset=offset).chunks()

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Names of the blobs in the model's container that start with `prefix`."""
        container = service_client(self.location).get_container_client(self.location.container)
        with _translated(self.location, f"list blobs under {prefix}"):
            yield from container.list_blob_names(name_starts_with=prefix)
