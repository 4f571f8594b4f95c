"""The one verdict: no-signal checks before padding, the judging order, frozen sequences, the display scale."""

from __future__ import annotations

import numpy as np
import pytest

from usqa.contracts.protocol import REASON_TEXT, REASONS
from usqa.service.frames import FrameSpec
from usqa.service.inference.calibration import percentile_of, score_scale
from usqa.service.inference.geometry import prepare_with_geometry
from usqa.service.inference.verdict import (
    FrozenCounter,
    SignalLimits,
    frozen_verdict,
    judge,
    measure_signal,
)
from usqa.service.registry import Calibration, Manifest

LIMITS = SignalLimits()


def _speckle(level: int = 60, shape: tuple[int, int] = (120, 160), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 20, shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((120, 160), np.uint8), "blank"),
        (np.full((120, 160), 128, np.uint8), "blank"),  # flat: no image at all
        (np.full((120, 160), 255, np.uint8), "saturated"),
        (np.hstack([np.zeros((120, 140), np.uint8), _speckle(200, (120, 20))]), "no_contact"),
        (_speckle(), None),
    ],
)
def test_no_signal_checks(image: np.ndarray, reason: str | None) -> None:
    assert measure_signal(image, LIMITS).reason == reason


def test_a_dim_real_echo_is_judged_before_the_letterbox_dims_it() -> None:
    # A wide dim frame: padding to a square would pull its mean below the blank level.
    dim = _speckle(level=10, shape=(60, 200))
    prepared = prepare_with_geometry(dim, FrameSpec(size=64))
    assert prepared.pixels.mean() < LIMITS.mean_level < prepared.mean_level
    assert prepared.signal.reason is None


def test_judging_order_and_amenable_follow_the_verdict() -> None:
    ok = measure_signal(_speckle(), LIMITS)
    blank = measure_signal(np.zeros((8, 8), np.uint8), LIMITS)
    kwargs = {"threshold": 0.05, "ood_threshold": 10.0}
    assert judge(blank, score=1.0, ood_distance=50.0, **kwargs).reason == "blank"
    far = judge(ok, score=1.0, ood_distance=50.0, **kwargs)
    assert (far.verdict, far.reason, far.amenable) == ("out_of_scope", "out_of_distribution", False)
    assert judge(ok, score=1.0, ood_distance=float("nan"), **kwargs).verdict == "out_of_scope"
    good = judge(ok, score=0.5, ood_distance=1.0, **kwargs)
    assert (good.verdict, good.reason, good.amenable) == ("good", "amenable", True)
    low = judge(ok, score=0.01, ood_distance=None, threshold=0.05, ood_threshold=None)
    assert (low.verdict, low.reason, low.amenable) == ("adjust", "low_score", False)
    assert (
        frozen_verdict(good).reason == "frozen"
        and frozen_verdict(
            blank_verdict := judge(blank, score=1.0, ood_distance=None, threshold=0.0, ood_threshold=None)
        )
        == blank_verdict
    )
    assert set(REASON_TEXT) == set(REASONS)


def test_frozen_after_the_limit_of_identical_frames() -> None:
    counter = FrozenCounter(limit=3)
    same, other = measure_signal(_speckle(), LIMITS).digest, measure_signal(_speckle(seed=1), LIMITS).digest
    assert [counter.add(same) for _ in range(4)] == [False, False, False, True]
    assert counter.add(other) is False
    assert not any(FrozenCounter(limit=0).add(same) for _ in range(20))


def test_percentile_scale_and_the_v1_fallback() -> None:
    quantiles = np.linspace(0.7, 0.8, 101)
    assert percentile_of(0.75, quantiles) == pytest.approx(0.5)
    assert percentile_of(0.0, quantiles) == 0.0 and percentile_of(1.0, quantiles) == 1.0
    ties = np.array([0.78] * 51 + list(np.linspace(0.78, 0.79, 50)))
    assert percentile_of(0.78, ties) == pytest.approx(0.25, abs=0.01)  # a mid-rank, not 0 or 0.5
    base = {
        "name": "m",
        "task": "classify",
        "class_names": ["a", "b"],
        "preprocessing": {"size": 32},
        "graphs": {"controller": "c.onnx", "predictor": "p.onnx"},
    }
    v1 = score_scale(Manifest(**base), threshold=0.75)  # type: ignore[arg-type]
    assert v1.fallback and v1.scale == "raw" and v1.display(0.7) == 0.7 and v1.ood_threshold is None
    calibrated = Manifest(**base, calibration=Calibration(score_quantiles=list(quantiles)))  # type: ignore[arg-type]
    v2 = score_scale(calibrated, threshold=0.705)
    assert not v2.fallback and v2.display_threshold == pytest.approx(0.05)
