"""Issue #25 at export: the served rejector, its pass line and the display score, decided on the served graphs
and honoured by the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from usqa.cli import main
from usqa.contracts.graphs import REJECTORS
from usqa.service.inference.rejectors import rejector_scores
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.registry.card import manifest_card
from usqa.service.registry.card_render import card_markdown
from usqa.service.registry.pass_line import pass_line
from usqa.trainer.amenability.rejection_report import CertificationTarget
from usqa.trainer.amenability.run import train
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import ExportOptions, export_run

from ...support.served import cpu_model


@pytest.fixture(scope="module")
def run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "classify"
    train(preset("debug", task="classify"), tiny_data, folder, progress=False)
    return folder


def test_the_manifest_serves_a_chosen_rejector_and_says_what_its_line_promises(
    run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    export_run(run, registry, ExportOptions(name="m", alias=CHAMPION, force=True), data_dir=tiny_data)
    version = registry.load("m", CHAMPION)
    manifest = version.manifest
    assert manifest.schema_version == 3 and manifest.rejector is not None
    assert manifest.rejector.name in REJECTORS and manifest.rejector.temperature > 0
    assert set(manifest.rejector.validation_aurc) == set(REJECTORS)
    assert manifest.rejector.reason.startswith("lowest validation AURC")
    certification = manifest.certification
    assert (
        certification is not None and certification.alpha == 0.02 and certification.delta == 0.1
    )  # classify's default
    # The tiny set's holdout is far too small to certify anything, and the manifest says so.
    assert not certification.certified and certification.threshold is None
    assert certification.reason.startswith(("too few calibration frames", "risk too high"))
    line = pass_line(manifest)
    assert not line.certified and line.promise.startswith("not certified (")
    assert manifest.calibration is not None and manifest.calibration.display_scale == "p_correct"

    # The runtime scores frames with the served rejector's formula over the graphs' outputs.
    model = cpu_model(version)
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    outputs = model.run(frames)
    assert outputs.probabilities is not None
    expected = rejector_scores(
        manifest.rejector.name,
        "classify",
        outputs.controller,
        outputs.probabilities,
        temperature=manifest.rejector.temperature,
        weights=manifest.rejector.weights,
        bias=manifest.rejector.bias,
    )
    assert outputs.scores == pytest.approx(expected)
    # Uncertified: the line is the validation score at the target rejection, on the served rejector's scale.
    assert model.threshold == pytest.approx(manifest.thresholds["0.05"])
    card = card_markdown(manifest_card(manifest))
    assert "## The pass line" in card and "not certified" in card


def test_a_forced_rejector_is_served_and_recorded(run: Path, tiny_data: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    options = ExportOptions(
        name="m", force=True, target=CertificationTarget(alpha=0.2, rejector="controller")
    )
    manifest = export_run(run, registry, options, data_dir=tiny_data).manifest
    assert manifest.rejector is not None and manifest.rejector.name == "controller"
    assert "forced with --rejector controller" in manifest.rejector.reason
    assert manifest.certification is not None and manifest.certification.alpha == 0.2


def test_cli_flags_for_the_line(
    run: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "export",
        "--run",
        str(run),
        "--data",
        str(tiny_data),
        "--registry",
        str(tmp_path / "r"),
        "--force",
    ]
    assert main([*args, "--alpha", "1.5"]) == 2
    assert "--alpha must be between 0 and 1" in capsys.readouterr().err
    assert main([*args, "--rejector", "softmax", "--delta", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "served rejector: softmax (forced" in out and "pass line: " in out
