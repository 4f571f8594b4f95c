from __future__ import annotations

from collections import Counter

from usqa.service.datasets.splits import assign_splits


def test_every_subject_gets_one_split_and_all_splits_are_used() -> None:
    subjects = [f"s{i:03d}" for i in range(40)]
    splits = assign_splits(subjects)
    assert set(splits) == set(subjects)
    counts = Counter(splits.values())
    assert counts == {"train": 28, "val": 6, "holdout": 6}


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    subjects = [f"p{i}" for i in range(30)]
    assert assign_splits(subjects, seed=3) == assign_splits(list(reversed(subjects)), seed=3)
    assert assign_splits(subjects, seed=3) != assign_splits(subjects, seed=4)


def test_small_sets_keep_val_and_holdout_non_empty() -> None:
    for n in range(3, 8):
        counts = Counter(assign_splits([f"s{i}" for i in range(n)]).values())
        assert counts["val"] >= 1 and counts["holdout"] >= 1 and counts["train"] >= 1


def test_fewer_than_three_subjects_all_train() -> None:
    assert assign_splits(["a", "b"]) == {"a": "train", "b": "train"}
    assert assign_splits([]) == {}


def test_duplicates_do_not_change_the_assignment() -> None:
    assert assign_splits(["a", "b", "c", "a", "a"]) == assign_splits(["a", "b", "c"])
