"""Data for a task: the data set's splits as tensors through the shared `prepare_frame`, and seeded batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from usqa.contracts.training import TrainConfig
from usqa.service.datasets import DatasetError, FrameRecord, LabelledDataset, load_dataset
from usqa.service.datasets.labels import FrameArrays

MSG_NO_MASKS = "task 'segment' needs masks, but {root} has no mask column (train with --task classify)"
MSG_EMPTY_SPLIT = "split {split!r} of {root} has no frames for task {task!r}"
MSG_NO_CLEAN = (
    "reward 'avg' needs a clean validation set, but no validation frame of {root} is labelled amenable=1"
)
MSG_FEW_CLASSES = "task 'classify' needs at least two classes in the training split of {root}"


class DataError(ValueError):
    """A data set that cannot be used for the requested task (a user mistake: the CLI exits 2)."""


def amenability(record: FrameRecord, task: str) -> int:
    """The ground-truth amenability of a frame for `task`: 1, 0, or -1 when unknown.

    Segmentation uses the `amenable_seg` column when the data set has it, else `amenable`.
    """
    text = record.extra.get("amenable_seg", "") if task == "segment" else ""
    if text.strip() in ("0", "1"):
        return int(text)
    return -1 if record.amenable is None else int(record.amenable)


@dataclass(frozen=True)
class SplitTensors:
    """One split for one task: frames uint8 [N, 1, S, S], targets (labels [N] or masks [N, S, S] int64)."""

    frames: torch.Tensor
    targets: torch.Tensor
    amenable: np.ndarray  # int8 [N]: 1, 0 or -1
    subjects: list[str]
    names: list[str]

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class TaskData:
    train: SplitTensors
    val: SplitTensors
    holdout: SplitTensors
    num_classes: int


def split_tensors(
    dataset: LabelledDataset, split: str, config: TrainConfig, arrays: FrameArrays | None = None
) -> SplitTensors:
    """One split as tensors for `config.task`; `arrays`: the split already read at `config.frame`."""
    arrays = dataset.arrays(split, config.frame) if arrays is None else arrays
    amenable = np.array([amenability(r, config.task) for r in dataset.split(split)], np.int8)
    keep = np.ones(len(arrays.labels), bool)
    if config.task == "segment":
        if arrays.masks is None:
            raise DataError(MSG_NO_MASKS.format(root=dataset.root))
        targets = torch.from_numpy(arrays.masks.astype(np.int64))
        # Dice is defined on frames that show the gland; frames without one are the classifier's business.
        keep = np.asarray(arrays.masks.reshape(len(keep), -1).any(axis=1), bool)
    else:
        targets = torch.from_numpy(arrays.labels)
    if not keep.any():
        raise DataError(MSG_EMPTY_SPLIT.format(split=split, root=dataset.root, task=config.task))
    index = np.flatnonzero(keep)
    return SplitTensors(
        frames=torch.from_numpy(arrays.images[index]).unsqueeze(1),
        targets=targets[torch.from_numpy(index)],
        amenable=amenable[index],
        subjects=[arrays.subjects[i] for i in index],
        names=[arrays.frames[i] for i in index],
    )


def load_task_data(
    data_dir: Path | str, config: TrainConfig, dataset: LabelledDataset | None = None
) -> TaskData:
    """Load and validate a data-set folder for `config.task`; raise `DataError` for unusable data."""
    try:
        dataset = dataset or load_dataset(data_dir)
    except DatasetError as exc:
        raise DataError(str(exc).splitlines()[0] + ": " + "; ".join(map(str, exc.problems[:3]))) from exc
    if config.task == "segment" and not dataset.has_masks:
        raise DataError(MSG_NO_MASKS.format(root=dataset.root))
    train, val, holdout = (split_tensors(dataset, s, config) for s in ("train", "val", "holdout"))
    num_classes = 2
    if config.task == "classify":
        num_classes = max(2, int(train.targets.max()) + 1)
        if len(torch.unique(train.targets)) < 2:
            raise DataError(MSG_FEW_CLASSES.format(root=dataset.root))
    return TaskData(train, val, holdout, num_classes)


def reward_indices(val: SplitTensors, config: TrainConfig, root: Path | str = "") -> torch.Tensor:
    """The fixed validation frames used for the reward: a seeded subset of at most `reward_frames`.

    With `reward.resample` it is the pool the engine draws from each step; `reward.holdout_fraction` of the
    candidates (seeded) is never in it.

    R_avg uses only frames labelled amenable (the paper's clean, human-selected validation set); R_w and
    R_sel use all validation frames, no amenability label needed.
    """
    candidates = np.arange(len(val))
    if config.reward.kind == "avg":
        candidates = np.flatnonzero(val.amenable == 1)
        if candidates.size == 0:
            raise DataError(MSG_NO_CLEAN.format(root=root))
    generator = np.random.default_rng(config.seed + 7)
    held_out = int(config.reward.holdout_fraction * candidates.size)
    if held_out:
        candidates = np.sort(generator.permutation(candidates)[held_out:])
    if config.reward.resample:
        return torch.from_numpy(candidates)  # the pool; the engine draws `reward_frames` from it every step
    if candidates.size > config.reward_frames:
        candidates = np.sort(generator.choice(candidates, config.reward_frames, replace=False))
    return torch.from_numpy(candidates)


def reward_mask(val: SplitTensors, config: TrainConfig, names: Sequence[str] | None = None) -> np.ndarray:
    """Which validation frames the controller's reward used (the pool, with `reward.resample`): over `val`
    itself, or over `names`, the frame references of another reading of the split (export's keeps the frames
    without a gland that segmentation's `val` drops)."""
    pool = {val.names[i] for i in reward_indices(val, config).tolist()}
    return np.array([name in pool for name in (val.names if names is None else names)], bool)


class BatchSampler:
    """Mini-batches of training indices without replacement within an epoch, from its own seeded generator."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size = size, min(batch_size, size)
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        if self._order.numel() < self.batch_size:
            self._order = torch.cat([self._order, torch.randperm(self.size, generator=self.generator)])
        batch, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
        return batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state(), "order": self._order.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()


class BalancedSampler:
    """Mini-batches drawn with replacement, each class equally likely, from its own seeded generator.

    A minority class (e.g. frames without the organ) otherwise appears in a batch only as often as in the
    data, and a small network learns the majority answer first and often only that.
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        counts = torch.bincount(labels)
        weights = 1.0 / counts.clamp(min=1).double()
        self.weights = weights[labels]
        self.batch_size = min(batch_size, len(labels))
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> torch.Tensor:
        return torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


def train_sampler(split: SplitTensors, config: TrainConfig, seed: int) -> BatchSampler | BalancedSampler:
    """The training split's sampler: class-balanced for classification when the recipe asks for it."""
    if config.recipe.balanced_sampling and config.task == "classify":
        return BalancedSampler(split.targets, config.batch_size, seed)
    return BatchSampler(len(split), config.batch_size, seed)
