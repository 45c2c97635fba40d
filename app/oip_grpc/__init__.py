"""The Open Inference Protocol over gRPC (GRPCInferenceService and grpc.health.v1.Health).

Module map: `supervisor` runs in the serve command's main process and never imports grpc (gRPC
servers do not survive fork(): docs/serving.md); `server` is the body of each forked gRPC worker
process; `service` the servicer; `codec` protobuf messages to and from numpy, on top of app.v2.codec;
`protocol/` the .proto and the stubs generated from it (`python -m app.oip_grpc.generate`).
"""
