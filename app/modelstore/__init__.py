"""The model store: immutable model versions in Azure Blob Storage or S3, addressed by URI, pinned by sha256.

Used by the app's fetch-model/publish-model verbs (init containers, CI) and by the promotion bot.
"""

from app.modelstore.errors import DigestMismatch, ModelExists, ModelNotFound, ModelStoreError
from app.modelstore.fetch import fetch_model, fetch_object
from app.modelstore.info import ModelInfo, stat_model
from app.modelstore.publish import publish_model
from app.modelstore.uri import MODEL_FILE, ModelUri, model_uri, parse_object_uri, parse_uri
from app.modelstore.versions import list_versions, version_key

__all__ = [
    "MODEL_FILE",
    "DigestMismatch",
    "ModelExists",
    "ModelInfo",
    "ModelNotFound",
    "ModelStoreError",
    "ModelUri",
    "fetch_model",
    "fetch_object",
    "list_versions",
    "model_uri",
    "parse_object_uri",
    "parse_uri",
    "publish_model",
    "stat_model",
    "version_key",
]
