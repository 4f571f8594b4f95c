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
    TRIVIAL_PREDICTOR,
    judge,
    refusal,
    trivial_metric,
    trivial_predictions,
)
from usqa.trainer.amenability.engine import frame_metric
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import VERDICT_FILE
from usqa.trainer.data import SplitTensors
from usqa.trainer.recipe.presets import preset


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
    good = judge("classify", 0.9, 0.6, "majority", scores, amenable)
    assert good.passed and good.controller["kappa"] > 0 and good.to_dict()["passed"]
    bad = judge("classify", 0.6 + MIN_MARGIN / 2, 0.6, "majority", np.full(40, 0.8), amenable)
    assert [r.code for r in bad.reasons] == [TRIVIAL_PREDICTOR, CONTROLLER_NO_SPREAD, CONTROLLER_KAPPA]
    assert bad.reasons[1].message == MSG_CONTROLLER_NO_SPREAD.format(spread=0.0, min_spread=1e-3)
    reversed_scores = judge("classify", 0.9, 0.6, "majority", scores[::-1].copy(), amenable)
    assert [r.code for r in reversed_scores.reasons] == [CONTROLLER_KAPPA]
    unlabelled = judge("classify", 0.9, 0.6, "majority", scores, np.full(40, -1))
    assert unlabelled.passed and unlabelled.controller["kappa"] is None


def test_refusal_message_lists_the_reasons() -> None:
    verdict = judge("segment", 0.0, 0.0, "an empty mask", np.full(5, 0.5), np.full(5, -1)).to_dict()
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
    assert set(written["predictor"]) >= {"metric", "trivial", "trivial_rule", "beats_trivial"}
    assert written["baseline_predictor"] is not None
    assert set(written["controller"]) >= {"score_spread", "kappa", "labelled_frames"}
