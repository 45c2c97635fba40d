"""Per-app service state shared by the blueprints (kept in app.extensions["ai_app"])."""

from __future__ import annotations

from dataclasses import dataclass

from app.metrics import Metrics
from app.model import OnnxModel


@dataclass
class ServiceState:
    metrics: Metrics
    max_request_bytes: int
    model: OnnxModel | None = None
