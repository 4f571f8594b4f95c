"""Load and validate a labelled data-set folder, reporting every bad row with its line number.

The format (docs/data.md): a folder with `labels.csv` whose columns are `frame` (path relative to the folder;
`file#N` names frame N of a multi-frame DICOM or video), `label` (int class), and optionally `mask` (binary
PNG), `subject`, `split` (train/val/holdout) and `amenable` (0/1). Other columns are kept as `extra`.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from usqa.service.datasets.splits import SPLITS, assign_splits
from usqa.service.frames import FrameError, FrameSpec, prepare_frame, prepare_mask, read_frames
from usqa.service.settings import get_settings

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS: tuple[str, ...] = ("frame", "label")
OPTIONAL_COLUMNS: tuple[str, ...] = ("mask", "subject", "split", "amenable")
FRAME_INDEX_SEPARATOR = "#"
MAX_REPORTED_PROBLEMS = 50

MSG_NO_LABELS = "no {name} in {root}: a data set is a folder with a labels.csv (see docs/data.md)"
MSG_MISSING_COLUMNS = "labels.csv lacks the required column(s) {columns}; it has {present}"
MSG_NO_ROWS = "labels.csv has a header but no rows"
MSG_EMPTY = "is empty"
MSG_NOT_INT = "{value!r} is not an integer"
MSG_NOT_BINARY = "{value!r} is not 0 or 1"
MSG_BAD_SPLIT = "{value!r} is not one of train, val, holdout"
MSG_ESCAPES = "{value!r} points outside the data-set folder"
MSG_MISSING_FILE = "file {value!r} does not exist"
MSG_UNREADABLE = "cannot read {value!r}: {reason}"
MSG_NO_SUCH_FRAME = "{value!r} has no frame {index} (it has {count})"
MSG_MASK_SIZE = "mask is {mask_shape[1]}x{mask_shape[0]} but the frame is {frame_shape[1]}x{frame_shape[0]}"
MSG_DUPLICATE = "frame {value!r} is listed again (first on line {first})"
MSG_SUBJECT_SPLITS = "subject {subject!r} is in several splits ({splits}); a subject must stay in one split"


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one row of labels.csv (line 1 is the header)."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.message}"


class DatasetError(ValueError):
    """A data set that cannot be used, with every problem found (not just the first)."""

    def __init__(self, root: Path, problems: Sequence[RowProblem | str]) -> None:
        self.root = root
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:MAX_REPORTED_PROBLEMS]]
        more = len(self.problems) - len(shown)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"data set {root}: {len(self.problems)} problem(s)\n  " + "\n  ".join(shown) + tail)


@dataclass(frozen=True)
class FrameRecord:
    """One validated row of labels.csv."""

    line: int
    frame: str
    label: int
    mask: str | None
    subject: str
    split: str
    amenable: int | None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameArrays:
    """A split as arrays, every frame through the shared `prepare_frame`."""

    images: np.ndarray  # uint8 [N, size, size]
    labels: np.ndarray  # int64 [N]
    masks: np.ndarray | None  # bool [N, size, size], None when the data set has no masks
    amenable: np.ndarray  # int8 [N]: 1, 0, or -1 when unknown
    subjects: list[str]
    frames: list[str]


def _split_frame_ref(ref: str) -> tuple[str, int | None]:
    path, sep, index = ref.rpartition(FRAME_INDEX_SEPARATOR)
    if sep and index.isdigit():
        return path, int(index)
    return ref, None


def _safe_relative(ref: str) -> bool:
    pure = PurePosixPath(ref.replace("\\", "/"))
    return bool(ref) and not pure.is_absolute() and ".." not in pure.parts and ":" not in pure.parts[0]


@lru_cache(maxsize=4)
def _decoded_file(path: Path, mtime_ns: int) -> tuple[np.ndarray, ...]:
    # Rows of a cine name the same file many times; decode it once per validation.
    settings = get_settings()
    return tuple(
        read_frames(path, max_pixels=settings.max_frame_pixels, max_frames=settings.max_frames_per_input)
    )


def read_frame_ref(root: Path, ref: str) -> np.ndarray:
    """The uint8 grayscale frame a `frame` cell names (a file, or `file#N` for frame N of a cine)."""
    rel, index = _split_frame_ref(ref)
    path = root / rel
    frames = _decoded_file(path, path.stat().st_mtime_ns)
    i = 0 if index is None else index
    if i >= len(frames):
        raise IndexError(MSG_NO_SUCH_FRAME.format(value=ref, index=i, count=len(frames)))
    return frames[i]


def read_mask_file(root: Path, ref: str) -> np.ndarray:
    """A binary mask PNG as bool (any non-zero pixel is foreground)."""
    return read_frame_ref(root, ref) > 0


@dataclass(frozen=True)
class LabelledDataset:
    root: Path
    records: tuple[FrameRecord, ...]
    columns: tuple[str, ...]

    @property
    def has_masks(self) -> bool:
        return any(r.mask for r in self.records)

    def split(self, name: str) -> list[FrameRecord]:
        return [r for r in self.records if r.split == name]

    def read_frame(self, record: FrameRecord) -> np.ndarray:
        return read_frame_ref(self.root, record.frame)

    def read_mask(self, record: FrameRecord) -> np.ndarray | None:
        return read_mask_file(self.root, record.mask) if record.mask else None

    def arrays(self, split: str | None, spec: FrameSpec) -> FrameArrays:
        """Frames (and masks) of one split, or all when `split` is None, prepared for a model of `spec`."""
        records = list(self.records) if split is None else self.split(split)
        images = np.zeros((len(records), spec.size, spec.size), np.uint8)
        masks = np.zeros((len(records), spec.size, spec.size), bool) if self.has_masks else None
        for i, record in enumerate(records):
            frame = self.read_frame(record)
            images[i] = prepare_frame(frame, spec)
            mask = self.read_mask(record)
            if masks is not None and mask is not None:
                # The mask goes through the same geometry as its frame (crop box found on the frame).
                masks[i] = prepare_mask(mask, frame, spec)
        return FrameArrays(
            images=images,
            labels=np.array([r.label for r in records], np.int64),
            masks=masks,
            amenable=np.array([-1 if r.amenable is None else r.amenable for r in records], np.int8),
            subjects=[r.subject for r in records],
            frames=[r.frame for r in records],
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Frames per split, per (split, label) and per (split, amenable), for `usqa inspect`."""
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            rows = self.split(split)
            per: dict[str, int] = {"frames": len(rows), "subjects": len({r.subject for r in rows})}
            for label, n in sorted(Counter(r.label for r in rows).items()):
                per[f"label {label}"] = n
            for amenable, n in sorted(Counter(r.amenable for r in rows).items(), key=lambda kv: str(kv[0])):
                per[f"amenable {'?' if amenable is None else amenable}"] = n
            out[split] = per
        return out


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        yield 0, dict.fromkeys(reader.fieldnames or [], "")
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}


def load_dataset(root: Path | str, *, check_images: bool = True, split_seed: int = 0) -> LabelledDataset:
    """Read and validate `root/labels.csv`; raise `DatasetError` listing every bad row."""
    root = Path(root)
    labels_path = root / LABELS_FILE
    if not labels_path.is_file():
        raise DatasetError(root, [MSG_NO_LABELS.format(name=LABELS_FILE, root=root)])
    rows = _rows(labels_path)
    _, header_row = next(rows)
    columns = tuple(header_row)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(
            root, [MSG_MISSING_COLUMNS.format(columns=", ".join(missing), present=", ".join(columns))]
        )

    problems: list[RowProblem] = []
    parsed: list[FrameRecord] = []
    first_seen: dict[str, int] = {}
    for line, row in rows:
        bad = len(problems)
        frame_ref = row.get("frame", "")
        rel, _ = _split_frame_ref(frame_ref)
        frame: np.ndarray | None = None
        if not frame_ref:
            problems.append(RowProblem(line, "frame", MSG_EMPTY))
        elif not _safe_relative(rel):
            problems.append(RowProblem(line, "frame", MSG_ESCAPES.format(value=frame_ref)))
        elif not (root / rel).is_file():
            problems.append(RowProblem(line, "frame", MSG_MISSING_FILE.format(value=rel)))
        elif frame_ref in first_seen:
            problems.append(
                RowProblem(line, "frame", MSG_DUPLICATE.format(value=frame_ref, first=first_seen[frame_ref]))
            )
        elif check_images:
            try:
                frame = read_frame_ref(root, frame_ref)
            except (FrameError, IndexError, OSError) as exc:
                problems.append(RowProblem(line, "frame", MSG_UNREADABLE.format(value=frame_ref, reason=exc)))
        first_seen.setdefault(frame_ref, line)

        label = _parse_int(row.get("label", ""), line, "label", problems)
        amenable_text = row.get("amenable", "")
        amenable = _parse_int(amenable_text, line, "amenable", problems) if amenable_text else None
        if amenable is not None and amenable not in (0, 1):
            problems.append(RowProblem(line, "amenable", MSG_NOT_BINARY.format(value=amenable_text)))

        split = row.get("split", "").lower()
        if split and split not in SPLITS:
            problems.append(RowProblem(line, "split", MSG_BAD_SPLIT.format(value=row["split"])))

        mask_ref = row.get("mask", "") or None
        if mask_ref is not None:
            mask_rel, _ = _split_frame_ref(mask_ref)
            if not _safe_relative(mask_rel):
                problems.append(RowProblem(line, "mask", MSG_ESCAPES.format(value=mask_ref)))
            elif not (root / mask_rel).is_file():
                problems.append(RowProblem(line, "mask", MSG_MISSING_FILE.format(value=mask_rel)))
            elif check_images:
                try:
                    mask = read_frame_ref(root, mask_ref)
                except (FrameError, IndexError, OSError) as exc:
                    problems.append(
                        RowProblem(line, "mask", MSG_UNREADABLE.format(value=mask_ref, reason=exc))
                    )
                else:
                    if frame is not None and mask.shape != frame.shape:
                        problems.append(
                            RowProblem(
                                line,
                                "mask",
                                MSG_MASK_SIZE.format(mask_shape=mask.shape, frame_shape=frame.shape),
                            )
                        )

        # Without a subject, each file is its own subject: all frames of a cine (`file#N`) stay together.
        subject = row.get("subject", "") or rel
        if len(problems) == bad and label is not None:
            extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
            parsed.append(FrameRecord(line, frame_ref, label, mask_ref, subject, split, amenable, extra))
    if not first_seen and not problems:
        raise DatasetError(root, [MSG_NO_ROWS])

    # Splits: a given split must keep each subject whole; a missing split is derived from the subject.
    given: dict[str, set[str]] = defaultdict(set)
    for record in parsed:
        if record.split:
            given[record.subject].add(record.split)
    for subject, splits in sorted(given.items()):
        if len(splits) > 1:
            problems.append(
                RowProblem(
                    0, "split", MSG_SUBJECT_SPLITS.format(subject=subject, splits=", ".join(sorted(splits)))
                )
            )
    if problems:
        raise DatasetError(root, problems)
    derived = assign_splits([r.subject for r in parsed if r.subject not in given], seed=split_seed)
    # Rows without a split follow the split their subject has elsewhere in the file, else the derived one.
    split_of = {**derived, **{subject: next(iter(splits)) for subject, splits in given.items()}}
    records = tuple(r if r.split else replace(r, split=split_of[r.subject]) for r in parsed)
    return LabelledDataset(root=root, records=records, columns=columns)


def _parse_int(text: str, line: int, column: str, problems: list[RowProblem]) -> int | None:
    if not text:
        problems.append(RowProblem(line, column, MSG_EMPTY))
        return None
    try:
        return int(text)
    except ValueError:
        problems.append(RowProblem(line, column, MSG_NOT_INT.format(value=text)))
        return None
