"""The rejectors' formulas on cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from usqa.service.inference.rejectors import (
    REJECTORS,
    doctor_score,
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
