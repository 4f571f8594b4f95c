"""The served-model evaluation: exact per-frame metrics, the selective metric, and real fixture graphs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from usqa.service.inference.evaluation import (
    EVAL_BATCH,
    evaluate,
    frame_accuracy,
    frame_dice,
    rejected_mask,
    selective_metric,
)
from usqa.service.inference.graph_file import open_graphs
from usqa.service.registry import CHAMPION, ModelRegistry

from ..conftest import FIXTURE_MODEL_NAME, FRAME_SIZE, SEGMENT_MODEL_NAME, frame_of_level, reference_model

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_frame_accuracy_takes_the_most_probable_class() -> None:
    probabilities = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]], np.float32)
    accuracy = frame_accuracy(probabilities, np.array([0, 0, 0]))
    assert accuracy.dtype == np.float64
    assert accuracy.tolist() == [1.0, 0.0, 1.0]  # a tie goes to the lowest class


def test_frame_dice_thresholds_at_one_half() -> None:
    probability = np.zeros((3, 2, 2), np.float32)
    probability[0] = [[0.5, 0.4], [0.0, 0.0]]  # 0.5 is foreground: one pixel
    probability[2] = [[0.9, 0.0], [0.0, 0.0]]
    truth = np.zeros((3, 2, 2), bool)
    truth[0, 0] = True  # two pixels, one of them predicted
    # frame 1: both empty (a perfect answer); frame 2: a predicted pixel where there is nothing
    assert frame_dice(probability, truth).tolist() == pytest.approx([2 / 3, 1.0, 0.0])


def test_selective_metric_at_a_threshold_and_at_a_rejection_ratio() -> None:
    metric = np.array([1.0, 0.0, 1.0, 0.5])
    scores = np.array([0.9, 0.1, 0.5, 0.4])
    at_threshold = selective_metric(metric, scores, threshold=0.5)
    assert (at_threshold.value, at_threshold.kept) == (1.0, 0.5)
    at_ratio = selective_metric(metric, scores, rejection_ratio=0.25)
    assert at_ratio.value == pytest.approx(2.5 / 3) and at_ratio.kept == 0.75
    assert selective_metric(metric, scores, rejection_ratio=0.0).value == pytest.approx(0.625)
    # A controller that keeps nothing scores 0, not NaN.
    assert selective_metric(metric, scores, threshold=0.95).value == 0.0
    assert rejected_mask(scores, 0.5).tolist() == [False, True, False, True]
    for rules in ({}, {"threshold": 0.5, "rejection_ratio": 0.1}):
        with pytest.raises(ValueError, match="either a threshold or a rejection ratio"):
            selective_metric(metric, scores, **rules)


def _levels(levels: list[int]) -> np.ndarray:
    return np.stack(
        [frame_of_level(level, (FRAME_SIZE, FRAME_SIZE), seed=i) for i, level in enumerate(levels)]
    )


def test_classifier_evaluation_is_the_served_outputs_in_batches(source_registry: Path) -> None:
    model = reference_model(source_registry, FIXTURE_MODEL_NAME)
    # More frames than one batch, dark and bright: the fixture classifier calls bright frames class 1.
    n = EVAL_BATCH + 6
    dark = np.arange(n) % 3 == 0
    images = _levels([8 if d else 160 for d in dark])
    labels = np.arange(n) % 2
    result = evaluate(model, images, labels)
    served = model.run(images)
    assert served.probabilities is not None
    expected_classes = (~dark).astype(np.int64)
    assert np.array_equal(result.predictions, expected_classes)
    assert np.array_equal(result.predictions, served.probabilities.argmax(axis=1))
    assert np.array_equal(result.metric, (expected_classes == labels).astype(np.float64))
    np.testing.assert_allclose(result.scores, served.scores, rtol=1e-6)
    assert (result.metric_name, len(result)) == ("accuracy", n)
    assert result.mean == pytest.approx(float((expected_classes == labels).mean()))
    kept = result.scores >= model.threshold
    assert np.array_equal(kept, ~dark)  # the controller rejects the dark frames
    selective = result.selective(threshold=model.threshold)
    assert selective.value == pytest.approx(result.metric[kept].mean())
    assert selective.kept == pytest.approx(kept.mean())
    small = evaluate(model, images, labels, batch=7)
    assert np.array_equal(small.metric, result.metric)
    np.testing.assert_allclose(small.scores, result.scores, rtol=1e-6)


def test_segmenter_evaluation_gives_exact_dice(source_registry: Path) -> None:
    model = reference_model(source_registry, SEGMENT_MODEL_NAME)
    half = FRAME_SIZE // 2
    images = np.full((3, FRAME_SIZE, FRAME_SIZE), 20, np.uint8)
    images[:2, :, :half] = 200  # the fixture segmenter marks pixels brighter than mid-grey
    masks = np.zeros(images.shape, bool)
    masks[0, :, :half] = True  # exactly the predicted half
    masks[1, :, : half // 2] = True  # a quarter: Dice = 2 * 1/4 / (1/2 + 1/4)
    result = evaluate(model, images, masks=masks)
    assert result.metric.tolist() == pytest.approx([1.0, 2 / 3, 1.0])  # frame 2: both empty
    assert result.predictions.shape == images.shape and result.predictions.dtype == bool
    assert result.metric_name == "dice"


def test_graph_files_score_like_the_registry_version(source_registry: Path) -> None:
    version = ModelRegistry(source_registry).load(FIXTURE_MODEL_NAME, CHAMPION)
    graphs = open_graphs(version.graph_path("controller"), version.graph_path("predictor"), "classify")
    images = _levels([8, 40, 90, 160, 220])
    labels = np.array([0, 1, 1, 1, 0])
    from_files = evaluate(graphs, images, labels)
    served = evaluate(reference_model(source_registry, FIXTURE_MODEL_NAME), images, labels)
    assert np.array_equal(from_files.metric, served.metric)
    assert np.array_equal(from_files.scores, served.scores)


def test_evaluation_needs_frames_and_their_truth(source_registry: Path) -> None:
    classifier = reference_model(source_registry, FIXTURE_MODEL_NAME)
    segmenter = reference_model(source_registry, SEGMENT_MODEL_NAME)
    images = _levels([100, 100])
    with pytest.raises(ValueError, match="against labels"):
        evaluate(classifier, images)
    with pytest.raises(ValueError, match="against masks"):
        evaluate(segmenter, images, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="no frames"):
        evaluate(classifier, images[:0], np.zeros(0, np.int64))


def test_the_evaluation_needs_no_torch_trainer_or_scikit_learn() -> None:
    code = (
        "import sys, usqa.service.inference.evaluation; "
        "print(sorted({'torch', 'usqa.trainer', 'usqa.cli', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=120
    )
    assert out.stdout.strip() == "[]"
