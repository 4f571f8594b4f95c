"""The honest verdict: trivial baselines, the refusal rules and their messages, the run's verdict.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from usqa.trainer.amenability.acceptance import (
    CONTROLLER_KAPPA,
    CONTROLLER_NO_SPREAD,
    MIN_MARGIN,
    MSG_CONTROLLER_NO_SPREAD,
    MSG_REFUSED,
    MSG_TRIVIAL_PREDICTOR,
    TRIVIAL_PREDICTOR,
    Verdict,
    judge,
    paired_margin,
    refusal,
    trivial_metric,
    trivial_predictions,
)
from usqa.trainer.amenability.engine import frame_metric
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import VERDICT_FILE
from usqa.trainer.data import SplitTensors
from usqa.trainer.recipe.presets import preset

from ...support.verdicts import FRAMES, classifier_frames, marginal_verdict


def split(targets: torch.Tensor, amenable: list[int] | None = None) -> SplitTensors:
    n = len(targets)
    return SplitTensors(
        frames=torch.zeros(n, 1, 8, 8, dtype=torch.uint8),
        targets=targets,
        amenable=np.array(amenable if amenable is not None else [-1] * n, np.int8),
        subjects=["s"] * n,
        names=[str(i) for i in range(n)],
    )


def test_the_trivial_classifier_is_the_training_majority() -> None:
    train_split = split(torch.tensor([1, 1, 1, 0]))
    val = split(torch.tensor([0, 0, 1, 1, 1]))
    ((logits, rule),) = trivial_predictions("classify", train_split, val)
    assert float(frame_metric("classify", logits, val.targets).mean()) == pytest.approx(0.6)
    assert "class 1" in rule
    assert trivial_metric("classify", train_split, val) == (pytest.approx(0.6), rule)


def test_the_trivial_segmenter_is_the_better_of_an_empty_and_a_full_mask() -> None:
    masks = torch.zeros(3, 8, 8, dtype=torch.long)
    masks[:, 2:4, 2:4] = 1  # 4 of 64 pixels: a full mask has Dice 2 * 4 / (4 + 64)
    (empty, empty_rule), (_, full_rule) = trivial_predictions("segment", split(masks), split(masks))
    assert float(frame_metric("segment", empty, masks).mean()) == pytest.approx(0.0, abs=1e-3)
    assert (empty_rule, full_rule) == ("an empty mask", "a full mask")
    value, rule = trivial_metric("segment", split(masks), split(masks))
    assert value == pytest.approx(8 / 68, abs=1e-3) and rule == "a full mask"


def test_judge_passes_a_useful_pair_and_names_each_failure() -> None:
    scores = np.linspace(0, 1, 40)
    amenable = np.array([0] * 10 + [1] * 30)  # the lowest scores are the non-amenable frames
    good_frames = np.array([1.0] * 36 + [0.0] * 4)  # 0.9 where the majority class gets 0.6
    majority = np.array([1.0] * 24 + [0.0] * 16)
    good = judge("classify", good_frames, majority, "majority", scores, amenable)
    assert good.passed and good.controller["kappa"] > 0 and good.to_dict()["passed"]
    bad = judge("classify", majority, majority, "majority", np.full(40, 0.8), amenable)
    assert [r.code for r in bad.reasons] == [TRIVIAL_PREDICTOR, CONTROLLER_NO_SPREAD, CONTROLLER_KAPPA]
    assert bad.reasons[1].message == MSG_CONTROLLER_NO_SPREAD.format(spread=0.0, min_spread=1e-3)
    reversed_scores = judge("classify", good_frames, majority, "majority", scores[::-1].copy(), amenable)
    assert [r.code for r in reversed_scores.reasons] == [CONTROLLER_KAPPA]
    unlabelled = judge("classify", good_frames, majority, "majority", scores, np.full(40, -1))
    assert unlabelled.passed and unlabelled.controller["kappa"] is None


def test_the_paired_margin_and_its_standard_error() -> None:
    predictor, trivial = classifier_frames(gained=6, lost=4)
    paired = paired_margin(predictor, trivial)
    d = predictor - trivial
    assert paired.frames == FRAMES and paired.margin == pytest.approx(2 / FRAMES)
    assert paired.se == pytest.approx(np.std(d, ddof=1) / np.sqrt(FRAMES))
    assert paired.lower_bound == pytest.approx(paired.margin - 1.645 * paired.se) and not paired.beats
    identical = paired_margin(trivial, trivial)
    assert (identical.margin, identical.se, identical.lower_bound, identical.beats) == (0.0, 0.0, 0.0, False)
    everywhere = paired_margin(np.ones(50), np.zeros(50))  # better on every frame: no spread, no doubt
    assert everywhere.se == 0.0 and everywhere.beats
    assert not paired_margin(np.ones(1), np.zeros(1)).beats  # one frame establishes nothing
    assert not paired_margin(np.ones(40) * 0.605, np.ones(40) * 0.6).beats  # sure, but below the minimum


def test_a_predictor_at_the_majority_class_is_refused_with_its_margin_and_error() -> None:
    predictor, trivial = classifier_frames(gained=0, lost=0)
    verdict = judge(
        "classify", predictor, trivial, "always class 1", np.linspace(0, 1, FRAMES), np.full(FRAMES, -1)
    )
    assert [r.code for r in verdict.reasons] == [TRIVIAL_PREDICTOR]
    assert "margin +0.000 ± 0.000 (1 SE over 180 frames)" in verdict.reasons[0].message
    assert not verdict.predictor["beats_trivial"] and verdict.predictor["lower_bound"] == 0.0


def test_a_margin_within_its_sampling_error_is_refused_and_said_with_numbers() -> None:
    verdict = marginal_verdict()
    p = verdict.predictor
    assert [r.code for r in verdict.reasons] == [TRIVIAL_PREDICTOR]
    assert p["metric"] - p["trivial"] > MIN_MARGIN  # the old rule (metric > trivial + 0.01) passed it
    assert (p["margin_frames"], round(p["margin"], 3), round(p["margin_se"], 3)) == (FRAMES, 0.011, 0.018)
    assert p["lower_bound"] < 0 and p["test"].startswith("paired") and not p["beats_trivial"]
    message = verdict.reasons[0].message
    assert message == MSG_TRIVIAL_PREDICTOR.format(
        metric="accuracy",
        value=p["metric"],
        trivial=p["trivial"],
        rule="always class 1",
        margin=p["margin"],
        se=p["margin_se"],
        frames=FRAMES,
        lower=p["lower_bound"],
        min_margin=MIN_MARGIN,
    )
    assert "margin +0.011 ± 0.018 (1 SE over 180 frames)" in message
    assert "margin +0.011 ± 0.018 (1 SE over 180 frames" in verdict.summary()
    clearly = classifier_frames(gained=40, lost=4)  # 0.828 vs 0.628
    better = judge("classify", *clearly, "always class 1", np.linspace(0, 1, FRAMES), np.full(FRAMES, -1))
    assert better.passed and better.predictor["lower_bound"] > 0.1


def test_a_verdict_written_before_the_paired_test_still_reads() -> None:
    old = {
        "metric": 0.7,
        "trivial": 0.6,
        "trivial_rule": "always class 1",
        "margin": 0.01,
        "beats_trivial": True,
    }
    controller = {"score_spread": 0.5, "kappa": None, "labelled_frames": 0, "operating_point": 0.05}
    verdict = Verdict("classify", "accuracy", 10, old, None, controller)
    assert "margin" not in verdict.summary() and verdict.summary().endswith("passed")
    assert refusal({**verdict.to_dict(), "passed": True}, "export") is None


def test_refusal_message_lists_the_reasons() -> None:
    verdict = judge(
        "segment", np.zeros(5), np.zeros(5), "an empty mask", np.full(5, 0.5), np.full(5, -1)
    ).to_dict()
    message = refusal(verdict, "export")
    reasons = "; ".join(r["message"] for r in verdict["reasons"])
    assert message == MSG_REFUSED.format(what="export", reasons=reasons)
    assert "does not beat the trivial baseline" in message and "--force" in message
    assert refusal({"passed": True, "reasons": []}, "export") is None


def test_train_writes_the_verdict_and_the_data_prior(tiny_data: Path, tmp_path: Path) -> None:
    segment = train(preset("debug", "segment"), tiny_data, tmp_path / "segment", progress=False)
    prior = segment.config.unet.foreground_prior
    assert prior is not None and 0 < prior < 0.5  # the training masks' foreground fraction
    assert segment.verdict is not None and segment.verdict.predictor["trivial_rule"] in (
        "an empty mask",
        "a full mask",
    )

    result = train(preset("debug", "classify"), tiny_data, tmp_path / "run", progress=False)
    written = json.loads((tmp_path / "run" / VERDICT_FILE).read_text())
    assert result.verdict is not None and written == json.loads(json.dumps(result.verdict.to_dict()))
    assert written["split"] == "val" and written["metric"] == "accuracy"
    assert set(written["predictor"]) >= {"metric", "trivial", "trivial_rule", "beats_trivial", "margin"}
    assert set(written["predictor"]) >= {"margin_se", "margin_frames", "lower_bound", "test"}
    assert written["baseline_predictor"] is not None
    assert set(written["controller"]) >= {"score_spread", "kappa", "labelled_frames"}
