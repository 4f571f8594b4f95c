"""The usqa runtime: frame pipeline, data-set format, simulator, ONNX inference and the API. Never imports torch."""
