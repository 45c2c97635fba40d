"""Which backend serves a model URI; backends are imported only when chosen (each pulls in a cloud SDK)."""

from __future__ import annotations

from app.modelstore.backend import Backend
from app.modelstore.uri import ModelUri


def open_backend(location: ModelUri, *, client_retries: bool) -> Backend:
    """The backend for `location`. `client_retries=False` leaves retrying to the caller (fetch resumes itself)."""
    if location.store == "s3":
        from app.modelstore.s3 import S3Backend

        return S3Backend(location, client_retries=client_retries)
    from app.modelstore.azure_blob import AzureBlobBackend

    return AzureBlobBackend(location, client_retries=client_retries)
