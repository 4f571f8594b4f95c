"""The labelled data-set folder format (docs/data.md): `labels.csv` beside the frames and masks."""

from usqa.service.datasets.labels import (
    LABELS_FILE,
    DatasetError,
    FrameRecord,
    LabelledDataset,
    RowProblem,
    load_dataset,
)
from usqa.service.datasets.splits import SPLITS, assign_splits

__all__ = [
    "LABELS_FILE",
    "SPLITS",
    "DatasetError",
    "FrameRecord",
    "LabelledDataset",
    "RowProblem",
    "assign_splits",
    "load_dataset",
]
