"""GRPCInferenceService of the Open Inference Protocol on grpcio's threaded server, over REST's state.

Calls run on the worker's few call threads (app/oip_grpc/call_threads.py); a call whose client
stalls before its request message arrives gets a thread of its own. Every call gets a request id
(the caller's `x-request-id` metadata when well formed, else a new one), returned in the trailing
metadata and written in its log line; it is counted in the REST metrics' series with
protocol="grpc", the full method name as route and the status code's name as status.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from app.config import Settings
from app.logs import AccessLog
from app.oip_grpc import codec
from app.oip_grpc.protocol import open_inference_grpc_pb2 as pb
from app.oip_grpc.protocol import open_inference_grpc_pb2_grpc as pb_grpc
from app.request_ids import RequestIds
from app.state import ServiceState
from app.v2.codec import V2Error
from app.v2.inference import find_model, run_model

logger = logging.getLogger("app.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
# V2Error statuses (HTTP codes) as gRPC codes: what the caller can fix is never INTERNAL.
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Probes call these every few seconds; logging them at INFO would drown the requests.
_QUIET = frozenset({"ServerLive", "ServerReady"})

Response = TypeVar("Response")


class MalformedRequest:
    """What the deserializer gives for bytes that are not the method's request message."""

    def __init__(self, message_name: str, error: Exception) -> None:
        self.message = f"the request is not a valid {message_name} message: {error}"


def _lenient_parser(message_class: type[Message]) -> Callable[[bytes], Message | MalformedRequest]:
    # gRPC answers UNKNOWN ("Unexpected DecodeError") when a deserializer raises; a client that
    # sends garbage gets INVALID_ARGUMENT instead, from the handler.
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Message | MalformedRequest:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return MalformedRequest(name, exc)

    return parse


def add_to_server(servicer: InferenceServicer, server: grpc.Server) -> None:
    """Register the servicer's methods: the generated add_GRPCInferenceServiceServicer_to_server, but
    with request parsing that reports malformed messages as the client's error."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_lenient_parser(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def _observed(method: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a servicer method (raising V2Error) as a gRPC handler with id, metrics and log."""
    route = f"/{SERVICE_NAME}/{method.__name__}"
    quiet = method.__name__ in _QUIET

    @functools.wraps(method)
    def handler(self: InferenceServicer, request: Any, context: grpc.ServicerContext) -> Response:
        self.request_received()
        started = time.perf_counter()
        incoming = None
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id":
                incoming = value
                break
        request_id = self.request_ids.for_request(incoming if isinstance(incoming, str) else None)
        trailer = (("x-request-id", request_id),)
        message = ""
        try:
            if isinstance(request, MalformedRequest):
                raise V2Error(request.message)
            response = method(self, request, request_id)
            code = grpc.StatusCode.OK
        except V2Error as exc:
            code, message = _CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id, "route": route})
            code, message = grpc.StatusCode.INTERNAL, "internal server error"
        seconds = time.perf_counter() - started
        self.state.metrics.observe_request("POST", route, code.name, seconds, "grpc")
        if code is not grpc.StatusCode.OK or (self.access_log and not quiet):
            fields = {"request_id": request_id, "route": route, "status": code.name}
            if message:
                fields["error"] = message
            fields["duration_ms"] = round(seconds * 1000, 3)
            fields["peer"] = context.peer()
            self.access_lines.request(fields)
        context.set_trailing_metadata(trailer)
        if code is not grpc.StatusCode.OK:
            context.abort(code, message)  # raises; the status goes out with the trailer set above
        return response

    return handler


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The protocol's six calls over one ServiceState (the model loaded and verified by serve)."""

    def __init__(
        self, state: ServiceState, settings: Settings, request_received: Callable[[], None] = lambda: None
    ) -> None:
        self.state = state
        # Tells the call threads this call has its request (CallThreads.request_received).
        self.request_received = request_received
        self.app_version = settings.APP_VERSION
        self.access_log = settings.ACCESS_LOG
        self.access_lines = AccessLog()
        self.request_ids = RequestIds()

    @_observed
    def ServerLive(self, request: pb.ServerLiveRequest, request_id: str) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_observed
    def ServerReady(self, request: pb.ServerReadyRequest, request_id: str) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.state.model is not None and not self.state.is_draining)

    @_observed
    def ModelReady(self, request: pb.ModelReadyRequest, request_id: str) -> pb.ModelReadyResponse:
        find_model(self.state, request.name, request.version or None)
        return pb.ModelReadyResponse(ready=True)

    @_observed
    def ServerMetadata(self, request: pb.ServerMetadataRequest, request_id: str) -> pb.ServerMetadataResponse:
        # binary_tensor_data is REST's extension; over gRPC raw contents are part of the protocol.
        return pb.ServerMetadataResponse(name="ai-app", version=self.app_version, extensions=[])

    @_observed
    def ModelMetadata(self, request: pb.ModelMetadataRequest, request_id: str) -> pb.ModelMetadataResponse:
        model = find_model(self.state, request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=[model.version],
            platform="onnxruntime_onnx",
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.inputs.values()],
            outputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.outputs.values()],
        )

    @_observed
    def ModelInfer(self, request: pb.ModelInferRequest, request_id: str) -> pb.ModelInferResponse:
        state = self.state
        model = find_model(state, request.model_name, request.model_version or None)
        feeds = codec.decode_inputs(model, request)
        names = codec.requested_outputs(model, request)
        results = run_model(state, model, feeds, names)
        return codec.encode_response(model, request.id, names, results, state.max_response_bytes)

