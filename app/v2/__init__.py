"""Open Inference Protocol (V2): the codec (transport-neutral) and the REST routes."""

from app.v2.codec import V2Error, error_body
from app.v2.routes import INFER_ROUTE, INFER_VERSION_ROUTE, InferRoute, create_blueprint, error_response

__all__ = [
    "INFER_ROUTE",
    "INFER_VERSION_ROUTE",
    "InferRoute",
    "V2Error",
    "create_blueprint",
    "error_body",
    "error_response",
]
