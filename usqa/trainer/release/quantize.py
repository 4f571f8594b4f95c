"""Static int8 (QDQ) quantisation of an exported graph, calibrated on training frames."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from usqa.contracts.graphs import INPUT_NAME


class FrameCalibrationReader(CalibrationDataReader):
    """Feeds calibration frames (uint8 [N, S, S]) one small batch at a time."""

    def __init__(self, frames: np.ndarray, batch: int = 16) -> None:
        self._batches = [frames[i : i + batch][:, None].copy() for i in range(0, len(frames), batch)]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return {INPUT_NAME: self._batches[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0


def quantize_int8(source: Path, target: Path, calibration_frames: np.ndarray) -> Path:
    """QDQ int8 weights and activations (per-channel weights), min-max calibrated."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            FrameCalibrationReader(calibration_frames),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    return target
