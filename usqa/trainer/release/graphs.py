"""ONNX export of the served networks, with the graph contract the service relies on.

The contract itself (names, roles, files, dtypes) is `usqa.contracts.graphs`; this module builds graphs that keep
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

from usqa.contracts.graphs import (
    INPUT_NAME,
    MASK_OUTPUT,
    OOD_OUTPUT,
    OPSET,
    PROBABILITIES_OUTPUT,
    SCORE_OUTPUT,
    Role,
)
from usqa.trainer.networks import FrameClassifier, UNet

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


# Intensity histogram bins of the frame statistics in the OOD feature vector (levels / 255), and the side
# of the coarse grid of mean intensities (the scan's layout: sector apex, depth fall-off).
STAT_BINS = 8
LAYOUT_GRID = 4


def frame_statistics(frame: torch.Tensor) -> torch.Tensor:
    """Cheap statistics of uint8 frames [N, 1, S, S] -> [N, STAT_BINS + 4 + LAYOUT_GRID**2].

    What a task network need not encode: mean, standard deviation, an 8-bin intensity histogram, the mean
    absolute difference of neighbouring pixels across and along the scan lines (speckle is smooth at the pixel
    scale; noise and checkerboards are not), and mean intensities on a 4 x 4 grid (another probe's or
    anatomy's layout: a cardiac sector from above is not a transrectal one). Measured in docs/service.md.
    """
    x = frame.float() / 255.0
    mean = x.mean(dim=(1, 2, 3))
    std = (x - mean[:, None, None, None]).square().mean(dim=(1, 2, 3)).sqrt()
    # Cumulative shares at each inner edge, differenced: exact in both runtimes (no float-equal edge at 1.0).
    at_least = [(x >= k / STAT_BINS).float().mean(dim=(1, 2, 3)) for k in range(1, STAT_BINS)]
    cumulative = torch.stack([torch.ones_like(mean), *at_least, torch.zeros_like(mean)], dim=1)
    histogram = cumulative[:, :-1] - cumulative[:, 1:]
    across = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    along = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    side = x.shape[-1] // LAYOUT_GRID  # static at export: the frame size is fixed per version
    layout = torch.nn.functional.avg_pool2d(x, side).flatten(1)
    return torch.cat([mean[:, None], std[:, None], histogram, across[:, None], along[:, None], layout], dim=1)


def task_and_features(predictor: nn.Module, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The predictor's logits and its pooled penultimate features (classifier) or bottleneck (U-Net)."""
    if isinstance(predictor, FrameClassifier):
        pooled = predictor.backbone(frame)
        return predictor.head(pooled), pooled
    if isinstance(predictor, UNet):
        x = predictor.scaling(frame)
        skips = []
        for i, block in enumerate(predictor.down):
            x = block(x if i == 0 else predictor.pool(x))
            skips.append(x)
        pooled = x.mean(dim=(2, 3))
        for up, merge, skip in zip(predictor.up, predictor.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return predictor.out(x), pooled
    raise TypeError(f"no OOD features for a {type(predictor).__name__}")


def ood_features(predictor: nn.Module, frame: torch.Tensor) -> torch.Tensor:
    """The vector the OOD distance is measured on: pooled predictor features and frame statistics."""
    _, pooled = task_and_features(predictor, frame)
    return torch.cat([pooled, frame_statistics(frame)], dim=1)


class PredictorWithOod(nn.Module):
    """The predictor as served plus `ood_distance` [N]: ||(features - mean) @ whitening|| (Mahalanobis).

    `mean` [D] and `whitening` [D, D] are fitted on training frames at export (usqa/trainer/release/fitting.py) and
    baked into the graph as constants; the features come from the same run of the network as the prediction.
    """

    def __init__(self, predictor: nn.Module, role: Role, mean: np.ndarray, whitening: np.ndarray) -> None:
        super().__init__()
        self.predictor = predictor
        self.role = role
        self.mean: torch.Tensor
        self.whitening: torch.Tensor
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("whitening", torch.as_tensor(whitening, dtype=torch.float32))

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = task_and_features(self.predictor, frame)
        features = torch.cat([pooled, frame_statistics(frame)], dim=1)
        distance = ((features - self.mean) @ self.whitening).square().sum(dim=1).sqrt()
        if self.role == "classifier":
            return torch.softmax(logits, dim=1), distance
        return 1.0 - torch.softmax(logits, dim=1)[:, :1], distance


# Fitted OOD constants (mean [D], whitening [D, D]) for the predictor graph, or None for the graph alone.
OodConstants = tuple[np.ndarray, np.ndarray] | None


def served_graph(network: nn.Module, role: Role, ood: OodConstants = None) -> tuple[nn.Module, list[str]]:
    """The module to export for `role` and the names of its outputs (the task output first)."""
    if role == "controller":
        return ControllerGraph(network).eval(), [SCORE_OUTPUT]
    output = PROBABILITIES_OUTPUT if role == "classifier" else MASK_OUTPUT
    if ood is not None:
        return PredictorWithOod(network, role, *ood).eval(), [output, OOD_OUTPUT]
    if role == "classifier":
        return ClassifierGraph(network).eval(), [output]
    return SegmenterGraph(network).eval(), [output]


def export_graph(network: nn.Module, role: Role, path: Path, size: int, ood: OodConstants = None) -> Path:
    """Export `network` for `role` to `path` (opset 18, dynamic batch) and run `onnx.checker` on it."""
    module, outputs = served_graph(network.cpu().eval(), role, ood)
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
            output_names=outputs,
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


def torch_outputs(
    network: nn.Module,
    role: Role,
    frames: np.ndarray,
    batch: int = 64,
    ood: OodConstants = None,
    output: int = 0,
) -> np.ndarray:
    """One output (by position) of the served graph computed in PyTorch, for parity: frames uint8 [N, S, S]."""
    module, _ = served_graph(network.cpu().eval(), role, ood)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch]))[:, None]
            result = module(chunk)
            outputs.append((result[output] if isinstance(result, tuple) else result).numpy())
    return np.concatenate(outputs)
