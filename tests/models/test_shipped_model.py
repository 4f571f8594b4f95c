"""The shipped models in models/ (one per exam: `make default-model`) load from a clean checkout, their manifests
check out, and they score frames of their own anatomy."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from usqa.service.frames import FrameSpec, prepare_frames
from usqa.service.live.drift import DriftMonitor, score_reference
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.settings import Settings
from usqa.service.simulator import simulate_cine, write_dataset
from tests.support.scope import cardiac_echo, judge, synthetic_frames
from tests.support.served import cpu_model

REPO_ROOT = Path(__file__).resolve().parents[2]
# Each shipped exam, its simulator preset, and the floor of its controller's holdout kappa at prevalence against
# the amenability labels (the value its export measured, rounded down: a regression guard; both are far above 0).
SHIPPED = [
    pytest.param("usqa-prostate", "transrectal_prostate", 0.5, id="prostate"),
    pytest.param("usqa-thyroid", "linear_thyroid", 0.45, id="thyroid"),
]


def test_the_default_exam_is_shipped_and_every_shipped_exam_is_listed_here() -> None:
    registry = ModelRegistry(REPO_ROOT / "models")
    assert Settings().model_name == "usqa-prostate"
    assert sorted(registry.names()) == sorted(p.values[0] for p in SHIPPED)


@pytest.mark.parametrize(("name", "preset", "kappa_floor"), SHIPPED)
def test_shipped_champion_verifies_and_scores_simulated_frames(name: str, preset: str, kappa_floor: float) -> None:
    registry = ModelRegistry(REPO_ROOT / "models")
    loaded = registry.load(name, CHAMPION)  # every sha256 against the manifest
    manifest = loaded.manifest
    assert manifest.task == "classify" and manifest.class_names == ["no_gland", "gland"]
    # The two graphs, the model card and the weights `usqa adapt` starts from.
    assert set(manifest.files) == {"controller.onnx", "predictor.onnx", "card.json", "card.md", "weights.npz"}
    # A score that means something: a calibrated display scale, an out-of-scope check, a controller that
    # agrees with the ground-truth amenability better than chance on its holdout.
    assert manifest.calibration is not None and manifest.ood is not None
    assert manifest.metrics["verdict"]["passed"] and not manifest.metrics["verdict"]["forced"]
    # Its holdout kappa against the amenability labels, rejecting as many frames as are non-amenable (at a
    # fixed 5 % kappa is capped far below 1 when about a third of the frames are non-amenable).
    evaluation = manifest.metrics["evaluation"]
    assert evaluation["kappa_at_prevalence"]["controller"] >= kappa_floor and evaluation["kappa"]["controller"] > 0
    assert sum(p.stat().st_size for p in loaded.path.iterdir()) < 10 * 1024 * 1024  # "a few MB"
    thresholds = [manifest.thresholds[k] for k in sorted(manifest.thresholds)]
    assert set(manifest.thresholds) >= {"0.05", "0.10", "0.15", "0.20"} and thresholds == sorted(thresholds)
    assert manifest.score_histogram is not None and sum(manifest.score_histogram.counts) > 0
    assert all(diff <= 1e-4 for diff in manifest.metrics["parity_max_abs_diff"].values())

    spec = FrameSpec.from_dict(manifest.preprocessing)
    frames = prepare_frames((f.image for f in simulate_cine(preset, 6, seed=3)), spec)[
        :, None
    ]
    controller = ort.InferenceSession(
        str(loaded.graph_path("controller")), providers=["CPUExecutionProvider"]
    )
    predictor = ort.InferenceSession(str(loaded.graph_path("predictor")), providers=["CPUExecutionProvider"])
    scores = controller.run(["score"], {"frame": frames})[0]
    probabilities = predictor.run(["probabilities"], {"frame": frames})[0]
    assert scores.shape == (6,) and ((scores >= 0) & (scores <= 1)).all()
    assert probabilities.shape == (6, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(("name", "preset", "kappa_floor"), SHIPPED)
def test_the_shipped_model_keeps_its_task_in_scope_and_calls_the_rest_out(
    name: str, preset: str, kappa_floor: float
) -> None:
    """Issue #14's checks on the shipped champion itself: blank, saturated, noise and checkerboard frames and
    the cardiac echo are never amenable; the echo moves the score's drift; a simulated sweep is mostly good."""
    registry = ModelRegistry(REPO_ROOT / "models")
    version = registry.load(name, CHAMPION)
    model = cpu_model(version)
    echo = cardiac_echo()
    foreign = judge(model, synthetic_frames() + echo)
    assert [f.verdict.verdict for f in foreign[:2]] == ["no_signal", "no_signal"]  # black, white
    assert all(f.verdict.verdict in ("no_signal", "out_of_scope") and not f.amenable for f in foreign)
    drift = DriftMonitor(score_reference(version.manifest), 100)
    for frame in judge(model, echo + echo):
        drift.add(frame.score)
    assert (drift.psi() or 0) > 0.25
    sweep = judge(model, [f.image for f in simulate_cine(preset, 100, seed=0)])
    verdicts = [f.verdict.verdict for f in sweep]
    assert verdicts.count("good") >= 0.6 * len(verdicts) and verdicts.count("out_of_scope") <= 0.2 * len(verdicts)


@pytest.mark.parametrize(("name", "preset", "kappa_floor"), SHIPPED)
def test_at_most_5_percent_of_clean_simulated_frames_are_out_of_scope(
    tmp_path: Path, name: str, preset: str, kappa_floor: float
) -> None:
    """Clean frames of the shipped model's own distribution (a fresh simulation, not its training frames)."""
    version = ModelRegistry(REPO_ROOT / "models").load(name, CHAMPION)
    write_dataset(
        tmp_path / "clean",
        frames=200,
        subjects=8,
        seed=101,
        size=128,
        preset=preset,
        degraded_fraction=0.0,
        workers=1,
    )
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((tmp_path / "clean" / "frames").glob("*.png"))]
    model = cpu_model(version)
    verdicts = [f.verdict.verdict for f in judge(model, images)]
    assert len(verdicts) == 200 and verdicts.count("out_of_scope") <= 0.05 * len(verdicts)
