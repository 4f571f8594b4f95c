"""ONNX export of the served networks, with the graph contract the service relies on.

The contract itself (names, roles, files, dtypes) is `contracts.graphs`; this module builds graphs that keep
it. Scaling lives inside the graphs (the networks' PixelScaling).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from contracts.graphs import INPUT_NAME, MASK_OUTPUT, OPSET, PROBABILITIES_OUTPUT, SCORE_OUTPUT, Role

log = logging.getLogger(__name__)

# The exported batch axis; the upper bound only guides the exporter's shape reasoning.
MAX_BATCH = 4096


class ControllerGraph(nn.Module):
    """Controller as served: amenability score [N]."""

    def __init__(self, controller: nn.Module) -> None:
        super().__init__()
        self.controller = controller

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.controller(frame)


class ClassifierGraph(nn.Module):
    """Classifier as served: class probabilities [N, C]."""

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.predictor(frame), dim=1)


class SegmenterGraph(nn.Module):
    """Segmenter as served: probability that a pixel is foreground (any class but background) [N, 1, H, W]."""

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.softmax(self.predictor(frame), dim=1)[:, :1]


def served_graph(network: nn.Module, role: Role) -> tuple[nn.Module, str]:
    """The module to export for `role` and the name of its output."""
    if role == "controller":
        return ControllerGraph(network).eval(), SCORE_OUTPUT
    if role == "classifier":
        return ClassifierGraph(network).eval(), PROBABILITIES_OUTPUT
    return SegmenterGraph(network).eval(), MASK_OUTPUT


def export_graph(network: nn.Module, role: Role, path: Path, size: int) -> Path:
    """Export `network` for `role` to `path` (opset 18, dynamic batch) and run `onnx.checker` on it."""
    module, output = served_graph(network.cpu().eval(), role)
    example = torch.zeros(2, 1, size, size, dtype=torch.uint8)
    batch = torch.export.Dim("N", min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        # The exporter's own deprecation chatter (torch internals), not something this code can act on.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[output],
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    log.info("exported %s to %s (%.1f kB)", role, path, path.stat().st_size / 1024)
    return path


def torch_outputs(network: nn.Module, role: Role, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """The served graph's output computed in PyTorch, for parity checks: frames uint8 [N, S, S]."""
    module, _ = served_graph(network.cpu().eval(), role)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch]))[:, None]
            outputs.append(module(chunk).numpy())
    return np.concatenate(outputs)
