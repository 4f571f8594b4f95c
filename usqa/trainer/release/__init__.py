"""The release path: a run's networks to ONNX graphs, checked, quantised, calibrated, carded and published."""
