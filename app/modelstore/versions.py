"""The published versions of a model: what a watcher compares a pinned version against."""

from __future__ import annotations

import re

from app.modelstore.factory import open_backend
from app.modelstore.uri import MODEL_FILE, parse_uri, segment_error


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order: digit runs compare as numbers, the rest as text ("10" > "9", "2024-06-01" > "2024-05-31")."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", version))


def list_versions(uri: str) -> list[str]:
    """Versions published beside the model at `uri` (same store, same name), oldest first in natural order.

    A version counts when its `<name>/<version>/model.onnx` exists; other objects under the name are ignored.
    """
    location = parse_uri(uri)
    prefix = f"{location.name}/"
    versions = []
    for key in open_backend(location, client_retries=True).list_keys(prefix):
        version, _, rest = key[len(prefix):].partition("/")
        if rest == MODEL_FILE and segment_error("version", version) is None:
            versions.append(version)
    return sorted(versions, key=version_key)
