"""Per-app service state shared by the blueprints (kept in app.extensions["ai_app"])."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.metrics import Metrics
from app.model import OnnxModel


@dataclass
class ServiceState:
    metrics: Metrics
    max_request_bytes: int
    max_response_bytes: int
    model: OnnxModel | None = None
    # Set (value 1) by the server on SIGTERM, shared with the forked workers: readiness then fails.
    draining: Any = None

    @property
    def is_draining(self) -> bool:
        return self.draining is not None and bool(self.draining.value)
