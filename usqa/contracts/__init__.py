"""The ground floor: what every layer of usqa shares and nothing of usqa's own that it imports.

`service`, `trainer` and `usqa` may import from here; this package imports only the standard library (the
import contract in tests/test_layers.py holds it to that). It holds the version, the command line's
`UsageError`, the frame specification, the ONNX graph contract and the torch-free training configuration.
"""
