"""ONNX inference for the service: providers and threads, loaded versions, the batching queue, hot swap,
and offline scoring. onnxruntime only, never torch."""
