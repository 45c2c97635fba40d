"""Prints the URI of a model version newer than the one an environment pins, or nothing.

Usage: model_watch.py --values environments/dev/values.yaml
Looks beside the pinned model in Blob Storage (same account, container and model name), takes the
highest published version that has a model.onnx, and prints its URI when it is newer than the pin.
Versions compare naturally ("10" > "9", "2024-06-01" > "2024-05-31").
Auth as app.modelstore: AZURE_STORAGE_CONNECTION_STRING when set, else DefaultAzureCredential.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ruamel.yaml import YAML, YAMLError

MODEL_FILE = "model.onnx"


def version_key(version: str) -> tuple:
    """Natural order: digit runs compare as numbers, the rest as text."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", version))


def pinned_model(values_file: Path) -> dict:
    try:
        values = YAML(typ="safe").load(values_file.read_text(encoding="utf-8")) or {}
    except (OSError, YAMLError) as err:
        raise SystemExit(f"{values_file}: {err}") from err
    model = values.get("model") or {}
    for field in ("uri", "name", "version"):
        if not model.get(field):
            raise SystemExit(f"{values_file}: model.{field} is missing")
    return model


def split_blob_uri(uri: str, name: str) -> tuple[str, str, str]:
    """(account endpoint, container, blob prefix of the model name) of a pinned blob URI."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        raise SystemExit(f"{uri}: only Blob Storage URIs are watched (scheme {parts.scheme!r})")
    segments = parts.path.strip("/").split("/")
    # Azurite puts the account name first in the path: http://127.0.0.1:PORT/devstoreaccount1/...
    account_in_path = not parts.hostname.endswith(".blob.core.windows.net")
    offset = 1 if account_in_path else 0
    container = segments[offset]
    blob = "/".join(segments[offset + 1 :])
    if not blob.startswith(f"{name}/"):
        raise SystemExit(f"{uri}: the blob path does not start with the model name {name!r}")
    endpoint = f"{parts.scheme}://{parts.netloc}" + (f"/{segments[0]}" if account_in_path else "")
    return endpoint, container, f"{name}/"


def container_client(endpoint: str, container: str):
    from azure.storage.blob import BlobServiceClient

    connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
    from azure.identity import DefaultAzureCredential

    return BlobServiceClient(endpoint, credential=DefaultAzureCredential()).get_container_client(container)


def newer_model_uri(values_file: Path) -> str | None:
    model = pinned_model(values_file)
    endpoint, container, prefix = split_blob_uri(model["uri"], model["name"])
    client = container_client(endpoint, container)
    versions = [
        blob.name[len(prefix) : -len(f"/{MODEL_FILE}")]
        for blob in client.list_blobs(name_starts_with=prefix)
        if blob.name.endswith(f"/{MODEL_FILE}") and blob.name.count("/") == prefix.count("/") + 1
    ]
    if not versions:
        return None
    latest = max(versions, key=version_key)
    if version_key(latest) <= version_key(str(model["version"])):
        return None
    return f"{endpoint}/{container}/{prefix}{latest}/{MODEL_FILE}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=Path, required=True, help="the environment's values.yaml")
    args = parser.parse_args(argv)
    uri = newer_model_uri(args.values)
    if uri:
        print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
