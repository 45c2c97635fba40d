"""The inference service: an Open Inference Protocol V2 server for one ONNX model."""
