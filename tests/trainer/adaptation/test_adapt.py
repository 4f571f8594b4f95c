"""`usqa adapt`: the three modes end to end from a published debug version, the refusals, the labelled draw."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from usqa.cli import main
from usqa.contracts.adaptation import ModelRef, parse_model_ref
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.simulator import write_dataset
from usqa.trainer.adaptation.adapt import (
    AdaptError,
    AdaptOptions,
    Start,
    load_site_data,
    load_version_start,
    stratified_draw,
)
from usqa.trainer.amenability.run import build_networks, load_run, train
from usqa.trainer.amenability.run_folder import ADAPT_FILE, MODEL_FILE
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import ExportOptions, export_run
from usqa.trainer.release.weights_file import WEIGHTS_FILE, read_weights

NAME = "site"
STEPS = 3


@pytest.fixture(scope="module")
def site_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another probe than the source's (curvilinear abdomen vs the fixture's transrectal prostate)."""
    out = tmp_path_factory.mktemp("site") / "abdomen"
    write_dataset(out, frames=96, subjects=8, seed=5, size=64, preset="curvilinear_abdomen", workers=1)
    return out


@pytest.fixture(scope="module")
def registry_root(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A debug classification version (with weights.npz) published as champion into a temporary registry."""
    root = tmp_path_factory.mktemp("adapt-registry")
    run = root.parent / "source-run"
    config = preset("debug", task="classify")
    train(replace(config, train_baseline=False), tiny_data, run, progress=False)
    export_run(
        run, ModelRegistry(root), ExportOptions(name=NAME, alias=CHAMPION, force=True), data_dir=tiny_data
    )
    return root


def test_model_references_parse_and_bad_ones_are_refused() -> None:
    assert parse_model_ref("usqa") == ModelRef("usqa", CHAMPION)
    assert parse_model_ref("usqa:3") == ModelRef("usqa", "3")
    assert str(parse_model_ref("usqa@challenger")) == "usqa@challenger"
    for bad in ("", "usqa:", "usqa:x", "../usqa", "usqa@"):
        with pytest.raises(ValueError, match="not a model reference"):
            parse_model_ref(bad)


def test_the_labelled_draw_is_seeded_and_class_balanced() -> None:
    strata = np.array([0] * 90 + [1] * 10)
    first = stratified_draw(strata, 16, seed=3)
    assert np.array_equal(first, stratified_draw(strata, 16, seed=3))
    assert not np.array_equal(first, stratified_draw(strata, 16, seed=4))
    assert np.bincount(strata[first]).tolist() == [8, 8]
    # a small class gives all it has; the rest comes from the others
    assert np.bincount(strata[stratified_draw(strata, 30, seed=0)]).tolist() == [20, 10]
    assert len(set(stratified_draw(strata, 100, seed=0))) == 100
    with pytest.raises(AdaptError, match="only 100"):
        stratified_draw(strata, 101, seed=0)


def test_export_publishes_weights_that_rebuild_the_run(registry_root: Path) -> None:
    version = ModelRegistry(registry_root).load(NAME, CHAMPION)  # sha256 of weights.npz checked
    assert WEIGHTS_FILE in version.manifest.files
    states = read_weights(version.path / WEIGHTS_FILE)
    assert {"predictor", "controller"} == set(states) and "head.weight" in states["predictor"]
    start = load_version_start(ModelRegistry(registry_root), parse_model_ref(NAME))
    assert start.source == f"{NAME}:1" and start.config.task == "classify"


@pytest.mark.parametrize("mode", ["probe", "finetune", "controller"])
def test_each_mode_adapts_end_to_end_and_exports(
    mode: str, registry_root: Path, site_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USQA_SHIPPED_REGISTRY", "false")
    out = tmp_path / mode
    argv = ["adapt", "--from", f"{NAME}:1", "--data", str(site_data), "--labels", "16", "--out", str(out)]
    argv += ["--mode", mode, "--seed", "2", "--steps", str(STEPS), "--registry", str(registry_root)]
    assert main([*argv, "--episodes", "2"]) == 0
    record = json.loads((out / ADAPT_FILE).read_text())
    assert record["source"] == f"{NAME}:1" and len(record["labelled_frames"]) == 16
    assert {"mean", "balanced_accuracy", "kappa", "rejection"} <= set(record["holdout"])
    config, controller, predictor, _ = load_run(out)
    source = load_version_start(ModelRegistry(registry_root), parse_model_ref(f"{NAME}:1"))
    moved = {
        name: any(
            not np.allclose(a.detach().numpy(), b.detach().numpy())
            for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True)
        )
        for name, mine, theirs in (
            ("controller", controller, source.controller),
            ("backbone", predictor.backbone, source.predictor.backbone),
            ("head", predictor.head, source.predictor.head),
        )
    }
    assert moved == {"controller": mode == "controller", "backbone": mode != "probe", "head": True}
    published = export_run(out, ModelRegistry(tmp_path / "reg"), ExportOptions(name="adapted", force=True))
    assert WEIGHTS_FILE in published.manifest.files and config.seed == 2


def _refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_inputs_are_refused_with_a_message(
    registry_root: Path,
    site_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USQA_SHIPPED_REGISTRY", "false")
    base = ["adapt", "--data", str(site_data), "--out", str(tmp_path / "x"), "--registry", str(registry_root)]
    assert "has no version '7'" in _refusal(capsys, [*base, "--from", f"{NAME}:7", "--labels", "8"])
    assert "no model named 'nobody'" in _refusal(capsys, [*base, "--from", "nobody", "--labels", "8"])
    assert "has only" in _refusal(capsys, [*base, "--from", NAME, "--labels", "5000"])
    err = _refusal(capsys, [*base, "--from", NAME, "--labels", "8", "--task", "segment"])
    assert "is a classify model; it cannot be adapted to task 'segment'" in err
    assert "not a model reference" in _refusal(capsys, [*base, "--from", "a:b:c", "--labels", "8"])
    if not torch.cuda.is_available():  # a GPU asked for and absent: said, never a silent CPU run
        err = _refusal(capsys, [*base, "--from", NAME, "--labels", "8", "--device", "cuda"])
        assert "sees no CUDA device" in err
    # a version without weights (as the shipped v1): refused with the way out
    registry = ModelRegistry(registry_root)
    version = registry.load(NAME, CHAMPION)
    files = {f: version.path / f for f in version.manifest.files if f != WEIGHTS_FILE}
    bare = registry.publish(version.manifest.model_copy(update={"files": {}}), files)
    err = _refusal(capsys, [*base, "--from", f"{NAME}:{bare.version}", "--labels", "8"])
    assert "has no weights.npz" in err and "re-export" in err
    assert not (tmp_path / "x" / MODEL_FILE).exists()


def test_a_segmentation_version_refuses_a_data_set_without_masks(tiny_data_without_masks: Path) -> None:
    config = preset("debug", task="segment")
    predictor, controller = build_networks(config)
    start = Start(config, predictor, controller, "seg:1")
    with pytest.raises(AdaptError, match=r"seg:1 on .*no mask"):
        load_site_data(start, tiny_data_without_masks, AdaptOptions(labels=4))
