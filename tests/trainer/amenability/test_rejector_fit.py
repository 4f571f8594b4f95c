"""Fitting the rejectors on validation frames and choosing the served one."""

from __future__ import annotations

import numpy as np
import pytest

from usqa.trainer.amenability.rejector_fit import (
    RejectorFit,
    SplitOutputs,
    choose_served,
    fit_rejectors,
    fit_temperature,
    margins_over_softmax,
    unseen_by_controller,
    validation_aurc,
    validation_scores,
)


def overconfident(n: int, factor: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports softmax(factor z): too sure by `factor`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 3))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true])
    reported = np.exp(factor * z) / np.exp(factor * z).sum(1, keepdims=True)
    return reported, labels


def test_temperature_undoes_overconfidence() -> None:
    reported, labels = overconfident(4000, 3.0, seed=0)
    assert fit_temperature("classify", reported, labels) == pytest.approx(3.0, rel=0.15)
    calibrated, labels = overconfident(4000, 1.0, seed=1)
    assert fit_temperature("classify", calibrated, labels) == pytest.approx(1.0, rel=0.15)


def split(n: int, seed: int) -> SplitOutputs:
    reported, labels = overconfident(n, 2.0, seed)
    failures = reported.argmax(1) != labels
    rng = np.random.default_rng(seed)
    return SplitOutputs(
        controller=rng.random(n),  # a controller that knows nothing
        outputs=reported,
        targets=labels,
        risks=failures.astype(float),
        failures=failures,
        subjects=np.arange(n) // 20,
    )


def test_the_served_rejector_is_the_lowest_validation_aurc() -> None:
    val = split(1500, seed=2)
    fit = fit_rejectors("classify", val)
    assert isinstance(fit, RejectorFit) and 1.5 < fit.temperature < 2.6
    found = validation_aurc("classify", fit, val)
    assert set(found) == {"controller", "softmax", "doctor", "fused", "expected_metric"}
    assert found["softmax"] < found["controller"]  # the uninformed controller is near the error rate
    name, reason = choose_served(found)
    assert found[name] == min(found.values()) and "lowest validation AURC" in reason
    assert choose_served(found, "controller") == ("controller", choose_served(found, "controller")[1])
    assert "forced" in choose_served(found, "controller")[1]


def test_ties_go_to_the_simpler_rejector() -> None:
    same = {"controller": 0.1, "softmax": 0.1, "doctor": 0.1, "fused": 0.1, "expected_metric": 0.1}
    assert choose_served(same)[0] == "softmax"


def test_another_rejector_serves_only_beyond_the_softmax_sampling_error() -> None:
    val = split(1500, seed=3)
    fit = fit_rejectors("classify", val)
    scores = validation_scores("classify", fit, val)
    margins = margins_over_softmax(scores, val, resamples=100)
    assert set(margins) == {"controller", "doctor", "fused", "expected_metric"}
    assert margins["controller"] > 0  # a controller that knows nothing is not better than the softmax
    # A planted rejector: the softmax's ranking with every failure moved to the bottom (an oracle).
    oracle = {**scores, "fused": np.where(val.failures, -1.0, 1.0) + 0.01 * scores["softmax"]}
    assert margins_over_softmax(oracle, val, resamples=100)["fused"] < 0
    validation = {"controller": 0.05, "softmax": 0.10, "doctor": 0.10, "fused": 0.08, "expected_metric": 0.10}
    # Lower by chance: the softmax still serves; beyond chance: the other one does.
    assert (
        choose_served(
            validation, margins={"controller": 0.01, "doctor": 0.0, "fused": 0.02, "expected_metric": 0.0}
        )[0]
        == "softmax"
    )
    name, reason = choose_served(
        validation, margins={"controller": -0.01, "doctor": 0.0, "fused": 0.02, "expected_metric": 0.0}
    )
    assert name == "controller" and "beyond: controller" in reason


def test_the_margin_is_corrected_for_the_challengers_tried() -> None:
    """Three challengers are each held to 98.3 %, one to 95 %: a chance win among several is not a win."""
    val = split(600, seed=5)
    scores = validation_scores("classify", fit_rejectors("classify", val), val)
    alone = margins_over_softmax({k: scores[k] for k in ("softmax", "controller")}, val, resamples=200)
    among_three = margins_over_softmax(scores, val, resamples=200)
    # The same bootstrap draws (same seed), a stricter percentile.
    assert among_three["controller"] > alone["controller"]


def test_a_controller_that_memorised_its_reward_frames_is_judged_on_the_others() -> None:
    """On its reward frames the controller ranks every failure last (it learnt them); elsewhere it knows
    nothing. Judged on all validation frames it beats the softmax; on the frames it never saw it does not."""
    val = split(1200, seed=6)
    reward = np.zeros(len(val), bool)
    reward[:300] = True
    memorised = np.where(reward, np.where(val.failures, 0.0, 1.0), val.controller)
    val = SplitOutputs(memorised, val.outputs, val.targets, val.risks, val.failures, val.subjects)
    served: dict[str, str] = {}
    for name, mask in (("all", None), ("unseen", reward)):
        judged, clause = unseen_by_controller(val, mask)
        fit = fit_rejectors("classify", judged)
        scores = validation_scores("classify", fit, judged)
        margins = margins_over_softmax(scores, judged, resamples=200)
        served[name] = choose_served(validation_aurc("classify", fit, judged), margins=margins)[0]
        assert (len(judged), clause) == (
            (1200, "on all 1200 validation frames")
            if mask is None
            else (900, "on the 900 validation frames outside the controller's reward set")
        )
    # On all frames a score built on the memorising controller serves (it or the fused one); not elsewhere.
    assert served["all"] in {"controller", "fused"} and served["unseen"] == "softmax"
    few = np.ones(len(val), bool)
    few[:10] = False  # ten frames outside the reward set: too few to judge on, and the clause says so
    judged, clause = unseen_by_controller(val, few)
    assert len(judged) == 1200 and "only 10 outside the controller's reward set" in clause
