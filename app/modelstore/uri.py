"""Model URIs: where a model version lives, `<store>/<name>/<version>/model.onnx`.

Azure Blob: https://<account>.blob.core.windows.net/<container>/<name>/<version>/model.onnx
Azurite (path-style account): http://127.0.0.1:10000/devstoreaccount1/<container>/<name>/<version>/model.onnx
S3: s3://<bucket>/<name>/<version>/model.onnx
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from app.credential_scope import AZURE_BLOB_HOST
from app.modelstore.errors import ModelStoreError

MODEL_FILE = "model.onnx"
# Names and versions become path segments, image labels and Helm values: keep them plain.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ModelUri:
    """A parsed model URI. `store` is "azure" or "s3"; `key` is the blob or object name in the container."""

    uri: str
    store: str
    account_url: str  # "" for S3
    container: str  # the Blob container or the S3 bucket
    name: str
    version: str
    file: str = MODEL_FILE  # the object in the version's folder: the model, or a file beside it (its card)

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}/{self.file}"

    def beside(self, file: str) -> ModelUri:
        """The object FILE in the same version folder (e.g. the model card next to model.onnx)."""
        return replace(self, file=file, uri=f"{self.uri.rsplit('/', 1)[0]}/{file}")


def segment_error(what: str, value: str) -> str | None:
    """Why `value` cannot be a model name or version, or None if it can."""
    if _SEGMENT.match(value):
        return None
    return f"invalid model {what} {value!r}: use letters, digits, '.', '_' and '-' (at most 128, not starting with '.')"


def _check_segment(uri: str, what: str, value: str) -> None:
    error = segment_error(what, value)
    if error:
        raise ModelStoreError(f"{uri}: {error}")


def _split_model_path(uri: str, parts: list[str], file: str | None) -> tuple[str, str, str]:
    """(name, version, file) of <name>/<version>/<file>; FILE None accepts any plain file name."""
    if len(parts) != 3 or (file is not None and parts[2] != file):
        raise ModelStoreError(f"{uri}: expected the path to end with <name>/<version>/{file or '<file>'}")
    name, version = parts[0], parts[1]
    _check_segment(uri, "name", name)
    _check_segment(uri, "version", version)
    _check_segment(uri, "file name", parts[2])
    return name, version, parts[2]


def parse_object_uri(uri: str) -> ModelUri:
    """Like parse_uri, for any file of a version folder: <store>/<name>/<version>/<file> (data sets, cards)."""
    return parse_uri(uri, file=None)


def parse_uri(uri: str, file: str | None = MODEL_FILE) -> ModelUri:
    """Parse and validate a model URI; ModelStoreError says what is wrong with it."""
    parsed = urlsplit(uri)
    if parsed.query or parsed.fragment:
        raise ModelStoreError(f"{uri}: a model URI takes no query or fragment (no SAS tokens: use credentials)")
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ModelStoreError(f"{uri}: missing bucket (s3://<bucket>/<name>/<version>/{MODEL_FILE})")
        name, version, file_name = _split_model_path(uri, parts, file)
        return ModelUri(uri, "s3", "", parsed.netloc, name, version, file_name)
    if parsed.scheme in ("https", "http"):
        host = (parsed.hostname or "").lower()
        if not host:
            raise ModelStoreError(f"{uri}: missing host")
        origin = f"{parsed.scheme}://{parsed.netloc}"
        if AZURE_BLOB_HOST.match(host):  # the public and sovereign clouds' Blob hosts
            if parsed.scheme != "https":
                raise ModelStoreError(f"{uri}: Azure Blob Storage needs https")
            account_url = origin
        else:
            # Emulators and custom endpoints address the account in the path (Azurite: /devstoreaccount1).
            if not parts:
                raise ModelStoreError(f"{uri}: missing account in the path (http://host:port/<account>/...)")
            account_url = f"{origin}/{parts.pop(0)}"
        if not parts:
            raise ModelStoreError(f"{uri}: missing container")
        container = parts.pop(0)
        name, version, file_name = _split_model_path(uri, parts, file)
        return ModelUri(uri, "azure", account_url, container, name, version, file_name)
    raise ModelStoreError(f"{uri}: unsupported scheme {parsed.scheme!r}: use https:// (Azure Blob) or s3://")


def model_uri(store_url: str, name: str, version: str) -> str:
    """The URI of `name`/`version` in a store given as its container URL (https://.../models, s3://bucket)."""
    for what, value in (("name", name), ("version", version)):
        if error := segment_error(what, value):
            raise ModelStoreError(f"{store_url}: {error}")
    uri = f"{store_url.rstrip('/')}/{name}/{version}/{MODEL_FILE}"
    parse_uri(uri)  # validates the store URL
    return uri
