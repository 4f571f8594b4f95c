"""Deterministic subject-level splits, so that no patient is in two splits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLITS: tuple[str, ...] = ("train", "val", "holdout")
# Fractions of subjects per split; val and holdout get at least one subject each when there are >= 3.
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)


def _subject_rank(subject: str, seed: int) -> str:
    # A hash, not a shuffled list: a subject's rank does not depend on which other subjects exist.
    return hashlib.sha256(f"{seed}:{subject}".encode()).hexdigest()


def assign_splits(subjects: Sequence[str], seed: int = 0) -> dict[str, str]:
    """Assign each distinct subject to 'train', 'val' or 'holdout', deterministically for a seed."""
    unique = sorted(set(subjects), key=lambda s: (_subject_rank(s, seed), s))
    n = len(unique)
    if n == 0:
        return {}
    if n < 3:
        # Too few subjects to hold any out: everything trains, and the loader reports the missing splits.
        return dict.fromkeys(unique, "train")
    n_val = max(1, round(n * SPLIT_FRACTIONS[1]))
    n_holdout = max(1, round(n * SPLIT_FRACTIONS[2]))
    n_train = n - n_val - n_holdout
    if n_train < 1:
        n_train, n_val, n_holdout = 1, 1, n - 2
    out: dict[str, str] = {}
    for i, subject in enumerate(unique):
        out[subject] = "train" if i < n_train else "val" if i < n_train + n_val else "holdout"
    return out
