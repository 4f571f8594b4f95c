"""The heterogeneous multi-class data of heating and fine-tuning: one or more data-set folders, classes taken
from the simulator's `preset` column, from `label`, or from both, every frame through `prepare_frame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from usqa.service.datasets import DatasetError, FrameRecord, LabelledDataset, load_dataset
from usqa.service.frames import FrameSpec

PRESET_COLUMN = "preset"
MSG_NO_PRESET = "--classes {source} needs a 'preset' column, but {root}/labels.csv has none"
MSG_FEW_CLASSES = "heating needs at least two classes in the training split; {classes} found ({source})"
MSG_UNKNOWN_CLASSES = "classes {names} are not among the backbone's classes"


class HeatDataError(ValueError):
    """A data set that cannot be used for heating or fine-tuning (a user mistake: the CLI exits 2)."""


@dataclass(frozen=True)
class ClassSplit:
    """One split: frames uint8 [N, 1, S, S], class ids int64 [N], frame names and subjects."""

    frames: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    subjects: list[str]

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class ClassData:
    train: ClassSplit
    val: ClassSplit
    holdout: ClassSplit
    class_names: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def resolve_class_source(datasets: Sequence[LabelledDataset], source: str) -> str:
    """`auto` is `preset_label` when every data set has a preset column (the simulator's), else `label`.

    Presets alone are no pre-training task: the field-of-view geometry tells them apart within ~20 steps
    (docs/heating.md), after which eq. 8's reward is ~0. Preset x label keeps the heterogeneity and adds the
    organ, the part a backbone should learn past the low-level differences.
    """
    has_preset = [PRESET_COLUMN in d.columns for d in datasets]
    if source == "auto":
        return "preset_label" if all(has_preset) else "label"
    if source in ("preset", "preset_label"):
        for dataset, ok in zip(datasets, has_preset, strict=True):
            if not ok:
                raise HeatDataError(MSG_NO_PRESET.format(source=source, root=dataset.root))
    return source


def class_key(record: FrameRecord, source: str) -> str:
    """The class name of a frame: its preset, `label N`, or `preset/label N`."""
    if source == "preset":
        return record.extra[PRESET_COLUMN]
    if source == "preset_label":
        return f"{record.extra[PRESET_COLUMN]}/label {record.label}"
    return f"label {record.label}"


def _tag(dataset: LabelledDataset, index: int, count: int) -> str:
    # Several folders: prefix each class with its folder so equal labels of different data sets stay apart.
    return "" if count == 1 else f"{index}:{dataset.root.name}:"


def load_class_data(
    roots: Sequence[Path | str],
    spec: FrameSpec,
    source: str = "auto",
    class_names: Sequence[str] | None = None,
    datasets: Sequence[LabelledDataset] | None = None,
) -> ClassData:
    """Load and merge data-set folders as one multi-class problem.

    `class_names` fixes the class ids (e.g. a checkpoint's); by default they are the sorted class names found.
    """
    try:
        loaded = list(datasets) if datasets is not None else [load_dataset(r) for r in roots]
    except DatasetError as exc:
        raise HeatDataError(str(exc).splitlines()[0] + ": " + "; ".join(map(str, exc.problems[:3]))) from exc
    source = resolve_class_source(loaded, source)
    keys = {
        split: [
            [_tag(d, i, len(loaded)) + class_key(r, source) for r in d.split(split)]
            for i, d in enumerate(loaded)
        ]
        for split in ("train", "val", "holdout")
    }
    found = sorted({k for per_split in keys.values() for per_set in per_split for k in per_set})
    names = tuple(class_names) if class_names is not None else tuple(found)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise HeatDataError(MSG_UNKNOWN_CLASSES.format(names=", ".join(unknown)))
    index = {name: i for i, name in enumerate(names)}
    splits = {}
    for split in ("train", "val", "holdout"):
        frames, labels, frame_names, subjects = [], [], [], []
        for i, dataset in enumerate(loaded):
            arrays = dataset.arrays(split, spec)
            frames.append(arrays.images)
            labels += [index[k] for k in keys[split][i]]
            prefix = _tag(dataset, i, len(loaded))
            frame_names += [prefix + f for f in arrays.frames]
            subjects += [prefix + s for s in arrays.subjects]
        images = np.concatenate(frames) if frames else np.zeros((0, spec.size, spec.size), np.uint8)
        splits[split] = ClassSplit(
            frames=torch.from_numpy(images).unsqueeze(1),
            labels=torch.tensor(labels, dtype=torch.int64),
            names=frame_names,
            subjects=subjects,
        )
    train_classes = len(torch.unique(splits["train"].labels))
    if train_classes < 2:
        raise HeatDataError(MSG_FEW_CLASSES.format(classes=train_classes, source=source))
    return ClassData(splits["train"], splits["val"], splits["holdout"], names, source)


def evaluation_subset(split: ClassSplit, count: int, seed: int) -> ClassSplit:
    """At most `count` frames of a split, a seeded random subset in the split's order (all when smaller)."""
    if count <= 0 or len(split) <= count:
        return split
    generator = torch.Generator().manual_seed(seed)
    index = torch.sort(torch.randperm(len(split), generator=generator)[:count]).values
    return ClassSplit(
        frames=split.frames[index],
        labels=split.labels[index],
        names=[split.names[i] for i in index.tolist()],
        subjects=[split.subjects[i] for i in index.tolist()],
    )
