from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from usqa.trainer.heating.evaluate import METRICS, classification_metrics, predict_proba


def test_perfect_and_uniform_predictions() -> None:
    labels = np.array([0, 1, 2, 2])
    perfect = classification_metrics(labels, np.eye(3)[labels])
    assert set(perfect) == set(METRICS)
    for key in ("precision", "recall", "f1", "auroc", "balanced_accuracy"):
        assert perfect[key] == 1.0
    assert perfect["entropy"] == 0.0
    uniform = classification_metrics(labels, np.full((4, 3), 1 / 3))
    assert math.isclose(uniform["entropy"], math.log(3))


def test_binary_auroc_and_a_missing_class() -> None:
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    assert classification_metrics(labels, probs)["auroc"] == 1.0
    missing = classification_metrics(np.array([0, 0, 1]), np.full((3, 3), 1 / 3))
    assert math.isnan(missing["auroc"])


def test_predict_proba_restores_training_mode_and_applies_the_transform() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    model.train()
    frames = torch.rand(5, 1, 2, 2)
    probs = predict_proba(model, frames, batch_size=2, transform=lambda x: x * 0)
    assert model.training
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1)
    assert np.allclose(probs, probs[0])  # every frame zeroed by the transform
