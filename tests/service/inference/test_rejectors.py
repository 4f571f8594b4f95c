"""The rejectors' formulas on cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from usqa.service.inference.rejectors import (
    REJECTORS,
    doctor_score,
    expected_metric,
    fused_score,
    rejector_scores,
    softmax_response,
)


def test_softmax_response_is_the_top_probability_and_temperature_flattens_it() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    assert softmax_response(probabilities, "classify") == pytest.approx([0.7, 1 / 3])
    hot = softmax_response(probabilities, "classify", temperature=2.0)
    # softmax(log p / 2) = sqrt(p) normalised
    root = np.sqrt([0.7, 0.2, 0.1])
    assert hot[0] == pytest.approx(root[0] / root.sum())
    assert hot[1] == pytest.approx(1 / 3)
    assert softmax_response(probabilities, "classify", temperature=0.5)[0] > 0.7


def test_segmentation_scores_average_their_pixels() -> None:
    masks = np.stack([np.full((4, 4), 0.5), np.where(np.eye(4) > 0, 1.0, 0.0)])
    assert softmax_response(masks, "segment") == pytest.approx([0.5, 1.0], abs=1e-6)
    assert doctor_score(masks, "segment") == pytest.approx([0.5, 1.0], abs=1e-6)
    # temperature 2 on p = 0.9: sigmoid(logit(0.9) / 2) = 3 / 4
    assert softmax_response(np.full((1, 2, 2), 0.9), "segment", temperature=2.0) == pytest.approx([0.75])


def test_the_expected_metric_is_the_top_probability_or_the_expected_dice_of_the_thresholded_mask() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1]])
    assert expected_metric(probabilities, "classify") == pytest.approx(
        softmax_response(probabilities, "classify")
    )
    # Worked by hand, 2 x 2 frames. Confident and right-looking: p = (1, 1, 0, 0), M = (1, 1, 0, 0): 2*2/(2+2) = 1.
    # A faint structure: p = (0.6, 0.4, 0, 0), M = (1, 0, 0, 0): 2*0.6/(1.0+1) = 0.6.
    # Nothing predicted though something may be there: p = (0.4, 0.4, 0, 0), M = 0: P(empty) = 0.6 * 0.6 = 0.36.
    # Nothing anywhere: both empty, P(empty) = 1 (an empty answer to an empty frame scores 1).
    masks = np.array(
        [
            [[1.0, 1.0], [0.0, 0.0]],
            [[0.6, 0.4], [0.0, 0.0]],
            [[0.4, 0.4], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 0.0]],
        ]
    )
    assert expected_metric(masks, "segment") == pytest.approx([1.0, 0.6, 0.36, 1.0], abs=1e-5)
    # The pixel-averaged softmax response ranks a faint structure (0.6 mean) with a frame of faint noise: here the
    # expected Dice sets them apart. On a 64 x 64 frame the background's many small p make P(empty) about 0.
    softmax = softmax_response(masks, "segment")
    assert softmax[1] == pytest.approx(softmax[2])
    wide = np.full((1, 64, 64), 0.01)
    assert expected_metric(wide, "segment")[0] < 1e-10 and softmax_response(wide, "segment")[0] > 0.98


def test_doctor_is_the_sum_of_squared_probabilities() -> None:
    probabilities = np.array([[1.0, 0.0], [0.5, 0.5], [0.6, 0.4]])
    assert doctor_score(probabilities, "classify") == pytest.approx([1.0, 0.5, 0.52], abs=1e-6)


def test_fused_is_a_logistic_model_over_controller_and_softmax_logit() -> None:
    controller, softmax = np.array([0.2, 0.9]), np.array([0.5, 0.75])
    fused = fused_score(controller, softmax, (2.0, 1.0), -1.0)
    expected = 1 / (1 + np.exp(-(2 * controller + np.log(softmax / (1 - softmax)) - 1)))
    assert fused == pytest.approx(expected)


def test_rejector_scores_names_every_rejector_and_refuses_others() -> None:
    controller = np.array([0.1, 0.8])
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4]])
    for name in REJECTORS:
        scores = rejector_scores(name, "classify", controller, probabilities, weights=(1.0, 1.0))
        assert scores.shape == (2,) and np.isfinite(scores).all()
    assert rejector_scores("controller", "classify", controller, probabilities) == pytest.approx(controller)
    with pytest.raises(ValueError, match="2 weights"):
        rejector_scores("fused", "classify", controller, probabilities)
    with pytest.raises(ValueError, match="unknown rejector"):
        rejector_scores("oracle", "classify", controller, probabilities)  # type: ignore[arg-type]
