"""What REST and gRPC share around the model: finding it by name and version, and running it."""

from __future__ import annotations

import logging
import time

import numpy as np
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

from app.model import OnnxModel
from app.state import ServiceState
from app.v2.codec import V2Error

logger = logging.getLogger("app.v2")


def loaded_model(state: ServiceState) -> OnnxModel:
    model = state.model
    if model is None:
        raise V2Error("model is not loaded yet", 503)
    return model


def find_model(state: ServiceState, name: str, version: str | None) -> OnnxModel:
    """The served model if `name` and `version` (None: any) are its own; V2Error 404 otherwise."""
    model = loaded_model(state)
    if name != model.name:
        raise V2Error(f"model {name!r} not found; this server serves {model.name!r}", 404)
    if version is not None and version != model.version:
        raise V2Error(f"model {name!r} version {version!r} not found; available versions: [{model.version!r}]", 404)
    return model


def run_model(
    state: ServiceState, model: OnnxModel, feeds: dict[str, np.ndarray], names: list[str]
) -> list[np.ndarray]:
    """Run the model on checked feeds, with the inference metrics; V2Error 400 for data the graph refuses."""
    metrics = state.metrics
    metrics.inferences_in_progress.inc()
    started = time.perf_counter()
    try:
        return model.run(feeds, names)
    except (InvalidArgument, RuntimeException, Fail) as exc:
        # The inputs passed every check against the model's metadata, so what is left is data the
        # graph cannot take (inconsistent batch sizes, out-of-range indices): the caller's to fix.
        metrics.inference_failures.inc()
        logger.warning("inference failed", extra={"error": str(exc), "model": model.name})
        raise V2Error(f"the model could not run on these inputs: {exc}") from None
    except Exception:
        metrics.inference_failures.inc()
        raise
    finally:
        metrics.inference_duration.observe(time.perf_counter() - started)
        metrics.inferences_in_progress.dec()
