"""Amazon S3 backend (also moto, MinIO): conditional puts, streamed ranged downloads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ResponseStreamingError,
)

from app.credential_scope import AWS_S3, credential_refusal
from app.modelstore.backend import CONNECT_TIMEOUT, READ_TIMEOUT, StoredObject
from app.modelstore.errors import ModelExists, ModelNotFound, ModelStoreError, TransientError
from app.modelstore.uri import ModelUri

CHUNK_BYTES = 8 * 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_TRANSIENT_CODES = {"RequestTimeout", "SlowDown", "Throttling", "ThrottlingException", "InternalError",
                    "ServiceUnavailable"}


def s3_client(*, client_retries: bool = True):  # -> botocore S3 client (typed stubs are not installed)
    """Credentials, region and endpoint come from the usual AWS_* variables (AWS_ENDPOINT_URL included)."""
    retries = {"max_attempts": 5, "mode": "standard"} if client_retries else {"max_attempts": 1}
    client = boto3.session.Session().client(
        "s3", config=Config(retries=retries, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)
    )
    # The keys sign every request: only AWS's own endpoints, or one the operator configured, get them.
    refusal = credential_refusal(AWS_S3, client.meta.endpoint_url)
    if refusal:
        raise ModelStoreError(refusal)
    return client


@contextmanager
def _translated(location: ModelUri, action: str) -> Iterator[None]:
    where = f"{location.uri}: {action}"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = error.get("Message") or code
        if code in _NOT_FOUND or status == 404:
            raise ModelNotFound(f"{where}: not found ({code or status})") from None
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            raise ModelExists(f"{where}: already exists ({code})") from None
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            raise TransientError(f"{where}: HTTP {status} {code}") from None
        raise ModelStoreError(f"{where}: HTTP {status} {code}: {message}") from None
    except NoCredentialsError:
        raise ModelStoreError(f"{where}: no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                              "or a profile)") from None
    except (ConnectionError, HTTPClientError, ResponseStreamingError, IncompleteReadError) as exc:
        raise TransientError(f"{where}: {exc}") from None
    except BotoCoreError as exc:
        raise ModelStoreError(f"{where}: {exc}") from None


class S3Backend:
    def __init__(self, location: ModelUri, *, client_retries: bool = True) -> None:
        self.location = location
        self._client = s3_client(client_retries=client_retries)

    def stat(self) -> StoredObject:
        with _translated(self.location, "head object"):
            head = self._client.head_object(Bucket=self.location.container, Key=self.location.key)
        metadata = head.get("Metadata") or {}
        return StoredObject(size=head["ContentLength"], sha256=metadata.get("sha256"),
                            card_sha256=metadata.get("card_sha256"))

    def upload(self, path: Path, sha256: str, metadata: dict[str, str] | None = None) -> None:
        # One PUT with If-None-Match: * is atomic: S3 refuses it when the key exists (up to 5 GiB per PUT).
        with _translated(self.location, "put object"), path.open("rb") as body:
            self._client.put_object(
                Bucket=self.location.container,
                Key=self.location.key,
                Body=body,
                ContentLength=path.stat().st_size,
                ContentType="application/octet-stream",
                Metadata={**(metadata or {}), "sha256": sha256},
                IfNoneMatch="*",
            )

    def read(self, offset: int) -> Iterator[bytes]:
        with _translated(self.location, f"download from byte {offset}"):
            extra = {"Range": f"bytes={offset}-"} if offset else {}
            response = self._client.get_object(Bucket=self.location.container, Key=self.location.key, **extra)
            body = response["Body"]
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            finally:
                body.close()

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys in the model's bucket that start with `prefix`."""
        with _translated(self.location, f"list objects under {prefix}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.location.container,
                                                                           Prefix=prefix)
            for page in pages:
                yield from (item["Key"] for item in page.get("Contents") or [])
