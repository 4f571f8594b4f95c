"""Export-time calibration (issue #14): the display scale, the out-of-scope check, the drift reference, the kappa gate.

- OOD: the Mahalanobis distance of a frame's feature vector (the predictor's pooled features plus frame
  statistics, `usqa.trainer.release.graphs.ood_features`) to the training frames. Features are standardised, their
  correlation shrunk towards the identity by `SHRINKAGE` (a few hundred frames cannot pin down a 40-dimensional
  covariance), and the inverse's Cholesky factor becomes the graph's `whitening` constant. The threshold is
  the validation distances' (1 - `FALSE_ALARM_RATE`) quantile, measured on the served graph.
- Display scale: validation controller scores at 101 evenly spaced probabilities (a score's percentile), and,
  where the validation split has amenability labels, an isotonic fit of P(amenable | score) (pool adjacent
  violators).
- Drift reference: `DRIFT_BINS` quantile bins of validation scores and of OOD distances.
- `check_kappa`: a run whose controller agrees with the amenability labels no better than chance is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from usqa.contracts.graphs import OOD_OUTPUT
from usqa.service.inference.graph_file import run_graph_file
from usqa.service.registry import Calibration, DriftReference, OodCalibration, ScoreHistogram
from usqa.trainer.amenability.run_folder import evaluation_report
from usqa.trainer.release.graphs import ood_features

SHRINKAGE = 0.1
FALSE_ALARM_RATE = 0.01
FIT_FRAMES = 2000
QUANTILES = 101
DRIFT_BINS = 10
MIN_LABELLED = 20
STD_FLOOR = 1e-3  # a feature constant on the training frames still gets a finite scale
PARITY_RTOL = 1e-4

MSG_KAPPA = (
    "the run's controller agrees with the amenability labels no better than chance on its holdout "
    "(Cohen's kappa {kappa:.3f} <= 0); not published (pass --force to publish it anyway)"
)
MSG_OOD_PARITY = "ood_distance: onnxruntime and torch differ by {diff:.2e} relative (> {rtol:.0e}) on real frames; not published"


class KappaError(ValueError):
    """An evaluated run whose controller does not beat chance: export refuses it unless forced."""


@dataclass(frozen=True)
class OodFit:
    mean: np.ndarray  # float32 [D]
    whitening: np.ndarray  # float32 [D, D]
    fit_frames: int

    @property
    def constants(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, self.whitening


def check_kappa(run_dir: Path, *, force: bool = False) -> float | None:
    """The controller's holdout kappa from the run's evaluation report; KappaError when <= 0 unless `force`."""
    report = evaluation_report(run_dir)
    kappa = None if report is None else report["kappa"].get("controller")
    if kappa is None:
        return None  # not evaluated: nothing to judge by
    if float(kappa) <= 0 and not force:
        raise KappaError(MSG_KAPPA.format(kappa=float(kappa)))
    return float(kappa)


def fit_ood(predictor: nn.Module, frames: np.ndarray, seed: int, batch: int = 128) -> OodFit:
    """Mean and shrunk whitening of the OOD features of (at most FIT_FRAMES of) the training frames."""
    rng = np.random.default_rng(seed)
    if len(frames) > FIT_FRAMES:
        frames = frames[np.sort(rng.choice(len(frames), FIT_FRAMES, replace=False))]
    predictor = predictor.cpu().eval()
    with torch.inference_mode():
        parts = [
            ood_features(predictor, torch.from_numpy(np.ascontiguousarray(frames[i : i + batch]))[:, None])
            for i in range(0, len(frames), batch)
        ]
    features = torch.cat(parts).double().numpy()
    mean = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), STD_FLOOR)
    z = (features - mean) / scale
    correlation = np.atleast_2d(np.cov(z, rowvar=False)) if len(z) > 1 else np.eye(z.shape[1])
    shrunk = (1 - SHRINKAGE) * correlation + SHRINKAGE * np.eye(len(mean))
    # z' P z = ||L' z||^2 with P = L L' (Cholesky of the precision): the graph multiplies by diag(1/scale) L.
    factor = np.linalg.cholesky(np.linalg.inv(shrunk))
    whitening = factor / scale[:, None]
    return OodFit(mean.astype(np.float32), whitening.astype(np.float32), len(frames))


def ood_distances(path: Path, frames: np.ndarray) -> np.ndarray:
    """The served predictor graph's `ood_distance` on uint8 frames [N, S, S]."""
    (distances,) = run_graph_file(path, frames, [OOD_OUTPUT])
    return distances.astype(np.float64)


def check_ood_parity(path: Path, torch_distances: np.ndarray, frames: np.ndarray) -> float:
    """Largest relative difference of the graph's distances from torch's; ValueError past PARITY_RTOL."""
    served = ood_distances(path, frames)
    diff = float((np.abs(served - torch_distances) / (1.0 + np.abs(torch_distances))).max())
    if diff > PARITY_RTOL:
        raise ValueError(MSG_OOD_PARITY.format(diff=diff, rtol=PARITY_RTOL))
    return diff


def isotonic_fit(scores: np.ndarray, labels: np.ndarray) -> tuple[list[float], list[float]]:
    """Breakpoints (x, y) of the non-decreasing least-squares fit of labels on scores (pool adjacent violators)."""
    order = np.argsort(scores, kind="stable")
    x, y = scores[order].astype(np.float64), labels[order].astype(np.float64)
    blocks: list[list[float]] = []  # [sum, count, x_first, x_last]
    for xi, yi in zip(x, y, strict=True):
        blocks.append([yi, 1.0, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, n, _, last = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
            blocks[-1][3] = last
    xs, ys = [], []
    for s, n, first, last in blocks:
        for point in (first, last) if last > first else (first,):
            xs.append(float(point))
            ys.append(round(s / n, 6))
    return xs, ys


def display_calibration(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    """Percentile map of validation scores, and P(amenable) where labels (0/1; -1 unknown) allow."""
    quantiles = np.quantile(scores, np.linspace(0.0, 1.0, QUANTILES))
    known = labels >= 0
    iso_x = iso_y = None
    if known.sum() >= MIN_LABELLED and len(np.unique(labels[known])) == 2:
        iso_x, iso_y = isotonic_fit(scores[known], labels[known])
    return Calibration(
        display_scale="percentile",
        score_quantiles=[float(q) for q in quantiles],  # unrounded: a score equal to one maps exactly
        isotonic_x=iso_x,
        isotonic_y=iso_y,
        labelled_frames=int(known.sum()),
    )


def quantile_bins(values: np.ndarray, bins: int = DRIFT_BINS) -> ScoreHistogram:
    """Quantile bin edges of `values` and their counts, as the service's drift counter bins them."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:  # every value equal: one bin around it
        edges = np.array([edges[0] - 1e-6, edges[0] + 1e-6])
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    return ScoreHistogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts])


def ood_calibration(distances: np.ndarray, fit: OodFit, false_alarm_rate: float) -> OodCalibration:
    """The threshold passed by `false_alarm_rate` of the validation distances, and their quantiles."""
    return OodCalibration(
        feature_dim=len(fit.mean),
        shrinkage=SHRINKAGE,
        threshold=float(np.quantile(distances, 1.0 - false_alarm_rate)),
        false_alarm_rate=false_alarm_rate,
        fit_frames=fit.fit_frames,
        validation_frames=len(distances),
        validation_quantiles=[round(float(q), 5) for q in np.quantile(distances, np.linspace(0, 1, 21))],
    )


@dataclass(frozen=True)
class ScopeCalibration:
    calibration: Calibration
    ood: OodCalibration
    drift_reference: DriftReference


def calibrate_scope(
    val_scores: np.ndarray,
    val_labels: np.ndarray,
    predictor_path: Path,
    val_frames: np.ndarray,
    fit: OodFit,
    false_alarm_rate: float = FALSE_ALARM_RATE,
) -> ScopeCalibration:
    """Everything the manifest's schema_version 2 sections hold, from the served graphs on validation frames."""
    distances = ood_distances(predictor_path, val_frames)
    return ScopeCalibration(
        calibration=display_calibration(val_scores, val_labels),
        ood=ood_calibration(distances, fit, false_alarm_rate),
        drift_reference=DriftReference(score=quantile_bins(val_scores), ood=quantile_bins(distances)),
    )
