"""Export-side calibration: isotonic P(amenable), quantile drift bins, the OOD whitening, the kappa gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from usqa.service.live.drift import ScoreHistogramCounter
from usqa.trainer.release.fitting import (
    MSG_KAPPA,
    KappaError,
    check_kappa,
    display_calibration,
    isotonic_fit,
    quantile_bins,
)


def test_isotonic_fit_is_monotone_and_pools_violators() -> None:
    xs, ys = isotonic_fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
    assert ys == sorted(ys) and ys[0] == 0.0 and ys[-1] == 1.0
    assert np.interp(0.25, xs, ys) == pytest.approx(0.5)


def test_display_calibration_uses_labels_only_when_both_classes_are_known() -> None:
    scores = np.random.default_rng(0).uniform(0.7, 0.8, 200)
    labels = (scores > 0.75).astype(np.int8)
    with_labels = display_calibration(scores, labels)
    assert with_labels.labelled_frames == 200 and with_labels.isotonic_x is not None
    assert len(with_labels.score_quantiles) == 101
    unknown = display_calibration(scores, np.full(200, -1, np.int8))
    assert unknown.isotonic_x is None and unknown.labelled_frames == 0


def test_quantile_bins_hold_equal_shares_as_the_service_counts_them() -> None:
    values = np.random.default_rng(1).normal(0.78, 0.002, 300)
    reference = quantile_bins(values)
    assert len(reference.counts) == 10 and max(reference.counts) - min(reference.counts) <= 2
    counter = ScoreHistogramCounter(reference)
    for v in values:
        counter.add(float(v))
    assert counter.counts == reference.counts
    shifted = ScoreHistogramCounter(reference)
    for v in values + 0.01:  # another population: all above the validation range
        shifted.add(float(v))
    assert (shifted.psi() or 0) > 0.25


def test_kappa_gate_refuses_a_chance_controller_unless_forced(tmp_path: Path) -> None:
    assert check_kappa(tmp_path) is None  # not evaluated: nothing to judge
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps({"kappa": {"controller": -0.04}}))
    with pytest.raises(KappaError) as refused:
        check_kappa(tmp_path)
    assert str(refused.value) == MSG_KAPPA.format(kappa=-0.04)
    assert check_kappa(tmp_path, force=True) == pytest.approx(-0.04)


def test_frame_statistics_separate_noise_and_layout() -> None:
    from usqa.trainer.release.graphs import frame_statistics

    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.integers(0, 256, (1, 1, 32, 32), dtype=np.uint8))
    flat = torch.full((1, 1, 32, 32), 128, dtype=torch.uint8)
    stats = frame_statistics(torch.cat([noise, flat]))
    assert stats.shape == (2, 8 + 4 + 16)
    assert torch.allclose(stats[:, 2:10].sum(dim=1), torch.ones(2))  # histogram shares
    assert stats[0, 10] > 0.2 and stats[1, 10] == 0  # neighbour differences: noise, not a flat frame
