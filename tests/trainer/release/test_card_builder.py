"""Export publishes a model card: the run's evaluation, the data set's splits, the commands to regenerate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from usqa.service.registry import ModelRegistry
from usqa.service.registry.card import CARD_JSON, CARD_MARKDOWN, ModelCard, read_card
from usqa.service.registry.card_render import card_markdown, max_kappa
from usqa.service.simulator.dataset import SETTINGS_FILE
from usqa.trainer.amenability.evaluate import evaluate
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import EVAL_DIR, REPORT_FILE
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.card_builder import NO_REPORT_NOTE, build_card, shown
from usqa.trainer.release.export import ExportOptions, export_run

from ...service.conftest import fixture_manifest


@pytest.fixture(scope="module")
def evaluated_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "classify"
    train(preset("debug", task="classify"), tiny_data, run, progress=False)
    evaluate(run, tiny_data, run / EVAL_DIR, resamples=2, plots=False)
    return run


def test_export_publishes_the_card_with_the_evaluation(
    evaluated_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    version = export_run(evaluated_run, registry, ExportOptions(name="m", force=True), data_dir=tiny_data)
    loaded = registry.load("m", version.version)  # the card's sha256 is checked with the graphs'
    assert {CARD_JSON, CARD_MARKDOWN} <= set(loaded.manifest.files)
    stored = ModelCard.model_validate_json((loaded.path / CARD_JSON).read_text())
    assert (stored.source, stored.note, stored.version) == ("export", None, 0)
    card = read_card(registry, "m", version.version)
    assert card.version == version.version
    report = json.loads((evaluated_run / EVAL_DIR / REPORT_FILE).read_text())
    assert card.evaluation is not None and card.evaluation.rejection_ratios == report["rejection_ratios"]
    assert set(card.evaluation.curves) == set(report["curves"]) and set(card.kappa) == set(report["kappa"])
    data = card.training_data
    simulation = json.loads((tiny_data / SETTINGS_FILE).read_text())
    assert data is not None and data.dataset == tiny_data.name and data.preset == simulation["preset"]
    assert sum(data.frames_per_split.values()) == simulation["frames"]
    commands = card.regenerate
    assert commands[0].startswith(f"usqa simulate --out {shown(tiny_data)} ")
    assert any(c.startswith("usqa train ") and "--config debug" in c for c in commands)
    assert commands[-1].startswith(f"usqa export --run {shown(evaluated_run)} ")
    markdown = (loaded.path / CARD_MARKDOWN).read_text()
    assert "## Rejection curves (holdout split)" in markdown
    assert str(tiny_data.resolve().parent) not in markdown  # folder names, never the exporter's paths


def test_a_run_without_an_evaluation_report_says_so(
    evaluated_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for item in evaluated_run.iterdir():
        if item.is_file():
            (run / item.name).write_bytes(item.read_bytes())
    registry = ModelRegistry(tmp_path / "reg")
    version = export_run(run, registry, ExportOptions(name="m", force=True), data_dir=tiny_data)
    card = read_card(registry, "m", version.version)
    assert (card.source, card.note, card.evaluation) == ("export", NO_REPORT_NOTE, None)


def test_the_builder_reads_the_report_and_writes_the_commands() -> None:
    manifest = fixture_manifest("m", "classify")
    curve = {"point": [0.8, 0.85, 0.9], "mean": [0.8, 0.84, 0.88], "std": [0.01, 0.02, 0.03]}
    report = {
        "metric": "accuracy",
        "rejection_ratios": [0.0, 0.05, 0.1],
        "curves": {"controller": curve, "random": curve},
        "operating_point": 0.05,
        "kappa": {"controller": 0.42, "confidence": float("nan")},
    }
    card = build_card(manifest, report=report)
    assert (card.source, card.note, card.evaluation is not None) == ("export", None, True)
    assert card.kappa == {"controller": 0.42, "confidence": None}  # NaN is "not measured", not a number
    markdown = card_markdown(card)
    assert "| 5% | 0.850 ± 0.020 | 0.850 ± 0.020 |" in markdown and "| controller | 0.420 |" in markdown
    assert card.regenerate[-1].startswith("usqa export ") and "--name m" in card.regenerate[-1]
    assert build_card(manifest).note == NO_REPORT_NOTE


@pytest.mark.parametrize(("rejected", "prevalence"), [(0.05, 0.306), (0.15, 0.205), (0.3, 0.1), (0.2, 0.2)])
def test_the_kappa_cap_the_card_states_is_a_perfect_rankings_kappa(
    rejected: float, prevalence: float
) -> None:
    frames = 1000
    low = np.arange(frames) < round(prevalence * frames)
    perfect = np.arange(frames) < round(
        rejected * frames
    )  # the lowest-scored frames are the non-amenable ones
    assert max_kappa(rejected, prevalence) == pytest.approx(cohen_kappa_score(perfect, low), abs=1e-9)
