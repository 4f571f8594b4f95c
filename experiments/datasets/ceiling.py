"""The cheap amenability ceiling of a data set: how much rejecting non-amenable frames by ground truth helps.

No RL, no torch: a small scikit-learn MLP on downsampled pixels is trained on the train split (all frames,
as a predictor without a controller would be) and scored on the holdout split, on all frames and after
rejecting 5 %, 15 % and the prevalence ratio of frames, the rejected ones drawn from the non-amenable
frames only (the "reject by ground-truth amenability" row). Three seeds, mean ± std.

    python -m experiments.datasets.ceiling --data runs/sim-dev

The gain at the prevalence ratio is the room a controller has: if it is small, no controller can show
its value on that data set.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from usqa.contracts.frames import FrameSpec
from usqa.service.datasets import load_dataset

# Small enough that three fits take seconds on two cores, large enough to see an organ's dark inside.
FEATURE_SIZE = 32
SEEDS = (0, 1, 2)
REJECTION_RATIOS = (0.05, 0.15)
HIDDEN_UNITS = (64,)
MAX_ITERATIONS = 300


@dataclass(frozen=True)
class Ceiling:
    """Holdout accuracy (mean, std over seeds) on all frames and at each rejection ratio."""

    holdout_frames: int
    prevalence: float
    rows: dict[str, tuple[float, float]]

    def gain(self) -> float:
        """Accuracy points gained by rejecting every non-amenable frame (the prevalence ratio)."""
        return 100 * (self.rows["prevalence ratio"][0] - self.rows["no rejection"][0])

    def table(self) -> str:
        lines = [
            f"holdout frames {self.holdout_frames}, non-amenable {100 * self.prevalence:.1f} %",
            "| rejection by ground-truth amenability | holdout accuracy (%) |",
            "| --- | ---: |",
        ]
        for name, (mean, std) in self.rows.items():
            lines.append(f"| {name} | {100 * mean:.1f} ± {100 * std:.1f} |")
        lines.append(f"gain at the prevalence ratio: {self.gain():+.1f} points")
        return "\n".join(lines)


def _features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


def _accuracy_after_rejection(
    correct: np.ndarray, amenable: np.ndarray, ratio: float, rng: np.random.Generator
) -> float:
    """Accuracy on the frames kept after rejecting `ratio` of all frames, chosen among non-amenable ones."""
    non_amenable = np.flatnonzero(amenable == 0)
    count = min(len(non_amenable), round(ratio * len(correct)))
    keep = np.ones(len(correct), bool)
    keep[rng.choice(non_amenable, count, replace=False)] = False
    return float(correct[keep].mean())


def measure(data: Path, *, train_on: str = "all", seeds: Sequence[int] = SEEDS) -> Ceiling:
    """Train on the train split (`all` frames or only `amenable` ones) and score the holdout split."""
    dataset = load_dataset(data)
    spec = FrameSpec(size=FEATURE_SIZE)
    train, holdout = dataset.arrays("train", spec), dataset.arrays("holdout", spec)
    if train_on == "amenable":
        if (train.amenable < 0).any():
            raise ValueError(f"{data}: some train frames have no amenable label")
        chosen = train.amenable == 1
    else:
        chosen = np.ones(len(train.labels), bool)
    if (holdout.amenable < 0).any():
        raise ValueError(f"{data}: some holdout frames have no amenable label")
    scaler = StandardScaler().fit(_features(train.images[chosen]))
    x_train = scaler.transform(_features(train.images[chosen]))
    x_holdout = scaler.transform(_features(holdout.images))
    prevalence = float((holdout.amenable == 0).mean())
    ratios = {f"{100 * r:.0f} %": r for r in REJECTION_RATIOS} | {"prevalence ratio": prevalence}
    scores: dict[str, list[float]] = {"no rejection": [], **{name: [] for name in ratios}}
    for seed in seeds:
        model = MLPClassifier(HIDDEN_UNITS, max_iter=MAX_ITERATIONS, early_stopping=True, random_state=seed)
        model.fit(x_train, train.labels[chosen])
        correct = model.predict(x_holdout) == holdout.labels
        scores["no rejection"].append(float(correct.mean()))
        rng = np.random.default_rng(seed)
        for name, ratio in ratios.items():
            scores[name].append(_accuracy_after_rejection(correct, holdout.amenable, ratio, rng))
    rows = {name: (float(np.mean(v)), float(np.std(v))) for name, v in scores.items()}
    return Ceiling(len(holdout.labels), prevalence, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a data-set folder with amenable labels")
    parser.add_argument(
        "--train-on",
        choices=("all", "amenable"),
        default="all",
        help="train the predictor on all train frames (default) or on the amenable ones only",
    )
    args = parser.parse_args(argv)
    print(f"{args.data} (predictor trained on {args.train_on} train frames)")
    print(measure(args.data, train_on=args.train_on).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
