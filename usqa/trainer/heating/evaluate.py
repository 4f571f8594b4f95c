"""Metrics of Tables 1, 2 and 4 from scikit-learn and scipy: mean prediction entropy, macro precision, recall,
F1, one-vs-rest AUROC and balanced accuracy, on clean or masked frames.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import entropy
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support, roc_auc_score
from torch import nn

METRICS: tuple[str, ...] = ("entropy", "precision", "recall", "f1", "auroc", "balanced_accuracy")

FrameTransform = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    frames: torch.Tensor,
    batch_size: int = 128,
    transform: FrameTransform | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Softmax class probabilities [N, C] (float64) in eval mode; `transform` sees each batch (e.g. masking)."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, frames.shape[0], batch_size):
        batch = frames[start : start + batch_size].to(device)
        if transform is not None:
            batch = transform(batch)
        out.append(torch.softmax(model(batch).float(), dim=1).double().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Macro metrics over all classes of `probs`; AUROC is NaN when a class is missing from `labels`."""
    labels = np.asarray(labels)
    num_classes = probs.shape[1]
    classes = np.arange(num_classes)
    predicted = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=classes, average="macro", zero_division=0
    )
    present = np.unique(labels)
    auroc = float("nan")
    if present.size == num_classes:
        if num_classes == 2:
            auroc = float(roc_auc_score(labels, probs[:, 1]))
        else:
            auroc = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=classes))
    with warnings.catch_warnings():
        # a class the model predicts but the split lacks is fine here: it counts as a wrong prediction
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(labels, predicted))
    return {
        # mean Shannon entropy (nats) of the predicted class distribution
        "entropy": float(np.mean(entropy(probs, axis=1))),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auroc": auroc,
        "balanced_accuracy": balanced,
    }


def evaluate_classifier(
    model: nn.Module,
    frames: torch.Tensor,
    labels: torch.Tensor,
    transform: FrameTransform | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    probs = predict_proba(model, frames, transform=transform, device=device)
    return classification_metrics(labels.numpy(), probs)
