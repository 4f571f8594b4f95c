"""The fingerprint, the plan's rules, plan.json round trips and overrides."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from usqa.contracts.training import OverrideError
from usqa.service.datasets import load_dataset
from usqa.trainer.amenability.run_folder import read_plan, write_plan
from usqa.trainer.recipe.fingerprint import Fingerprint, measure_fingerprint
from usqa.trainer.recipe.plan import BUDGETS, apply_plan, depth_for, derive_plan
from usqa.trainer.recipe.planning import PlanRecord, make_plan, parse_overrides, trial_subset
from usqa.trainer.recipe.presets import preset


def fingerprint(**changes: object) -> Fingerprint:
    base = Fingerprint(
        task="classify",
        frames=3500,
        subjects=60,
        val_frames=750,
        height=128,
        width=128,
        aspect=1.0,
        intensity_mean=51.0,
        intensity_std=51.0,
        intensity_p01=0.0,
        intensity_p99=250.0,
        class_counts={"0": 1400, "1": 2100},
        majority_fraction=0.6,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_fingerprint_measures_the_training_split(tiny_data: Path) -> None:
    dataset = load_dataset(tiny_data)
    train = dataset.split("train")
    fp = measure_fingerprint(dataset, "classify")
    assert fp.frames == len(train) and fp.val_frames == len(dataset.split("val"))
    assert (fp.height, fp.width, fp.aspect) == (64, 64, 1.0)
    assert sum(fp.class_counts.values()) == len(train)
    assert fp.majority_fraction == pytest.approx(max(fp.class_counts.values()) / len(train), abs=1e-4)
    assert 0 < fp.intensity_mean < 255 and fp.intensity_std > 0 and fp.target_fraction is None
    seg = measure_fingerprint(dataset, "segment")
    assert seg.target_fraction is not None and 0 < seg.target_fraction < 0.5
    assert seg.target_pixels is not None and seg.target_pixels == pytest.approx(
        seg.target_fraction * 64 * 64, rel=0.6
    )
    assert Fingerprint.from_dict(json.loads(json.dumps(seg.to_dict()))) == seg


def test_the_size_rules() -> None:
    default, debug = BUDGETS["default"], BUDGETS["debug"]
    assert derive_plan(fingerprint(), default)[0].input_size == 64  # the measured rule
    assert derive_plan(fingerprint(), debug)[0].input_size == 32  # the budget's cap
    assert derive_plan(fingerprint(height=48, width=60), default)[0].input_size == 32  # never upsampled
    small_target = fingerprint(task="segment", target_diameter_fraction=0.1, target_fraction=0.01)
    plan, sources = derive_plan(small_target, default)
    assert plan.input_size == 96 and "8 input pixels" in sources["input_size"]  # 0.1 * 96 >= 8


def test_depth_width_and_budget_rules() -> None:
    assert [depth_for("classify", s) for s in (32, 64, 96, 128)] == [2, 3, 3, 4]
    assert [depth_for("segment", s) for s in (32, 64, 96, 128)] == [3, 4, 4, 5]
    plan, _ = derive_plan(fingerprint(frames=3500), BUDGETS["default"])
    epoch = -(-3500 // 32)
    assert plan.supervised_steps == min(60 * epoch, 2000) and plan.eval_every == epoch
    small, _ = derive_plan(fingerprint(frames=100), BUDGETS["default"])
    assert small.batch_size == 6 and small.supervised_steps == 60 * 17  # a few frames: 60 epochs
    assert plan.steps_per_episode == 10
    big, _ = derive_plan(fingerprint(), BUDGETS["default"], size=128)
    assert big.steps_per_episode == 2 and big.supervised_steps == 500  # a quarter of the compute per pixel
    assert not plan.balanced_sampling
    assert derive_plan(fingerprint(majority_fraction=0.85), BUDGETS["demo"])[0].balanced_sampling
    assert plan.pixel_mean == pytest.approx(0.2) and plan.pixel_std == pytest.approx(0.2)


def test_the_plan_shapes_the_config() -> None:
    plan, _ = derive_plan(fingerprint(), BUDGETS["default"])
    config = apply_plan(preset("default"), plan)
    assert config.frame.size == 64 and config.backbone.widths == (16, 32, 64)
    assert config.controller.backbone == config.backbone and config.backbone.pixel_mean == plan.pixel_mean
    assert config.supervised.steps == plan.supervised_steps and config.recipe.warmup_episodes == 0
    seg_plan, _ = derive_plan(fingerprint(task="segment", target_diameter_fraction=0.2), BUDGETS["demo"])
    seg = apply_plan(preset("demo", "segment"), seg_plan)
    assert seg.unet.widths == (4, 8, 16, 32) and seg.frame.size == 64


def test_plan_json_round_trips_and_overrides_are_checked(tiny_data: Path, tmp_path: Path) -> None:
    overrides = parse_overrides(["input_size=32", "augment=none", "learning_rate=0.01"])
    assert overrides == {"input_size": 32, "augment": "none", "learning_rate": 0.01}
    record = make_plan(tiny_data, "classify", "demo", preset("demo"), overrides)
    assert record.plan.input_size == 32 and record.plan.depth == 2 and record.plan.augment == "none"
    assert record.sources["input_size"] == "override" and record.sources["depth"].startswith("rule")
    write_plan(record.to_dict(), tmp_path)
    saved = read_plan(tmp_path)
    assert saved is not None and PlanRecord.from_dict(saved) == record
    assert record.config(preset("demo")).frame.size == 32
    with pytest.raises(OverrideError, match="input_sizes"):
        make_plan(tiny_data, "classify", "demo", preset("demo"), {"input_sizes": 3})
    with pytest.raises(OverrideError, match="augment"):
        make_plan(tiny_data, "classify", "demo", preset("demo"), {"augment": "lots"})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["input_size"])


def test_the_trial_scores_candidates_on_validation_only(tiny_data: Path) -> None:
    budget = replace(BUDGETS["debug"], trial_sizes=(32, 64), trial_steps=4, trial_frames=20)
    dataset = load_dataset(tiny_data)
    assert len(trial_subset(dataset, 20, 0).split("train")) == 20
    assert trial_subset(dataset, 20, 0).split("holdout") == dataset.split("holdout")
    from usqa.trainer.recipe import plan as plan_module

    BUDGETS_BEFORE = dict(plan_module.BUDGETS)
    plan_module.BUDGETS["trial"] = budget
    try:
        record = make_plan(tiny_data, "classify", "trial", preset("debug"))
    finally:
        plan_module.BUDGETS.clear()
        plan_module.BUDGETS.update(BUDGETS_BEFORE)
    assert record.trial is not None
    assert [c["size"] for c in record.trial["candidates"]] == [32, 64]
    assert record.trial["val_frames"] == len(dataset.split("val"))
    assert record.plan.input_size in (32, 64) and record.sources["input_size"].startswith("trial")
