from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom.examples
import pytest

from usqa.service.datasets import DatasetError, load_dataset
from usqa.service.datasets import labels as L
from usqa.service.frames import FrameSpec

from .conftest import WriteFolder


def good_rows(n: int = 12) -> list[dict[str, str]]:
    return [
        {
            "frame": f"frames/{i:03d}.png",
            "label": str(i % 2),
            "mask": f"masks/{i:03d}.png",
            "subject": f"s{i // 2}",
            "amenable": str(int(i % 3 != 0)),
            "severity": f"{i / 10:.1f}",
        }
        for i in range(n)
    ]


def test_valid_folder_loads_with_derived_subject_splits(write_folder: WriteFolder) -> None:
    dataset = load_dataset(write_folder(good_rows()))
    assert len(dataset.records) == 12
    assert dataset.has_masks
    by_subject: dict[str, set[str]] = {}
    for r in dataset.records:
        by_subject.setdefault(r.subject, set()).add(r.split)
    assert all(len(s) == 1 for s in by_subject.values())
    assert {r.split for r in dataset.records} == {"train", "val", "holdout"}
    first = dataset.records[0]
    assert (first.line, first.label, first.amenable, first.extra) == (2, 0, 0, {"severity": "0.0"})


def test_rows_without_split_follow_their_subjects_given_split(write_folder: WriteFolder) -> None:
    rows = good_rows(6)
    for row in rows:
        row["split"] = ""
    rows[0]["split"] = "holdout"  # subject s0 owns rows 0 and 1
    dataset = load_dataset(write_folder(rows, columns=[*rows[0].keys()]))
    assert [r.split for r in dataset.records if r.subject == "s0"] == ["holdout", "holdout"]


BAD_ROWS = [
    # (case, cells that replace the good row's, column reported, message constant)
    ("label not int", {"label": "gland"}, "label", L.MSG_NOT_INT.format(value="gland")),
    ("label empty", {"label": ""}, "label", L.MSG_EMPTY),
    ("amenable not binary", {"amenable": "2"}, "amenable", L.MSG_NOT_BINARY.format(value="2")),
    ("unknown split", {"split": "test"}, "split", L.MSG_BAD_SPLIT.format(value="test")),
    ("frame missing", {"frame": "missing/x.png"}, "frame", L.MSG_MISSING_FILE.format(value="missing/x.png")),
    ("frame escapes", {"frame": "../outside.png"}, "frame", L.MSG_ESCAPES.format(value="../outside.png")),
    ("absolute path", {"frame": "/etc/passwd"}, "frame", L.MSG_ESCAPES.format(value="/etc/passwd")),
    ("mask missing", {"mask": "missing/m.png"}, "mask", L.MSG_MISSING_FILE.format(value="missing/m.png")),
    ("mask escapes", {"mask": "../m.png"}, "mask", L.MSG_ESCAPES.format(value="../m.png")),
    ("frame empty", {"frame": ""}, "frame", L.MSG_EMPTY),
]


@pytest.mark.parametrize(("case", "cells", "column", "message"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_each_bad_row_is_reported_with_its_line(
    write_folder: WriteFolder, case: str, cells: dict[str, str], column: str, message: str
) -> None:
    rows = good_rows()
    for row in rows:
        row.setdefault("split", "")
    rows[4].update(cells)
    with pytest.raises(DatasetError) as info:
        load_dataset(write_folder(rows, columns=[*rows[0].keys()]))
    assert [(p.line, p.column, p.message) for p in info.value.problems] == [(6, column, message)]
    assert f"line 6, {column}: {message}" in str(info.value)


def test_every_problem_is_reported_not_just_the_first(write_folder: WriteFolder, tmp_path: Path) -> None:
    rows = good_rows()
    rows[1]["label"] = "x"
    rows[3]["frame"] = "missing/a.png"
    rows[5]["frame"] = rows[2]["frame"]  # duplicate
    root = write_folder(rows)
    (root / "frames" / "007.png").write_bytes(b"not a png at all")
    cv2.imwrite(str(root / rows[8]["mask"]), np.zeros((10, 10), np.uint8))  # wrong size
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    found = {(p.line, p.column) for p in info.value.problems}
    assert found == {(3, "label"), (5, "frame"), (7, "frame"), (9, "frame"), (10, "mask")}
    by_line = {p.line: p.message for p in info.value.problems}
    assert by_line[7] == L.MSG_DUPLICATE.format(value=rows[2]["frame"], first=4)
    assert by_line[9].startswith("cannot read 'frames/007.png': ")
    assert by_line[10] == L.MSG_MASK_SIZE.format(mask_shape=(10, 10), frame_shape=(48, 48))


def test_subject_in_two_splits_is_an_error(write_folder: WriteFolder) -> None:
    rows = good_rows(4)
    for row, split in zip(rows, ["train", "val", "train", "train"], strict=True):
        row["split"] = split
    with pytest.raises(DatasetError) as info:
        load_dataset(write_folder(rows))
    assert [p.message for p in info.value.problems] == [
        L.MSG_SUBJECT_SPLITS.format(subject="s0", splits="train, val")
    ]


def test_missing_labels_columns_and_empty_file(tmp_path: Path, write_folder: WriteFolder) -> None:
    with pytest.raises(DatasetError, match=r"no labels\.csv in"):
        load_dataset(tmp_path)
    root = write_folder([{"frame": "frames/a.png", "mask": ""}])
    with pytest.raises(DatasetError, match="lacks the required column"):
        load_dataset(root)
    (root / "labels.csv").write_text("frame,label\n")
    with pytest.raises(DatasetError, match=L.MSG_NO_ROWS):
        load_dataset(root)


def test_arrays_go_through_the_shared_pipeline(write_folder: WriteFolder) -> None:
    dataset = load_dataset(write_folder(good_rows()))
    spec = FrameSpec(size=32)
    arrays = dataset.arrays("train", spec)
    n = len(dataset.split("train"))
    assert arrays.images.shape == (n, 32, 32) and arrays.images.dtype == np.uint8
    assert arrays.masks is not None and arrays.masks.shape == (n, 32, 32) and arrays.masks.dtype == bool
    assert arrays.labels.dtype == np.int64 and arrays.amenable.dtype == np.int8
    record = dataset.split("train")[0]
    from usqa.service.frames import prepare_frame

    assert np.array_equal(arrays.images[0], prepare_frame(dataset.read_frame(record), spec))
    assert len(arrays.subjects) == len(arrays.frames) == n


def test_cine_frames_by_index_and_subject_per_file(tmp_path: Path) -> None:
    # pydicom's bundled multi-frame ultrasound cine (30 frames, YBR_FULL_422, JPEG baseline); never downloaded.
    cine = Path(str(pydicom.examples.ybr_color.filename))
    root = tmp_path / "cine"
    root.mkdir()
    shutil.copy(cine, root / "cine.dcm")
    lines = ["frame,label"] + [f"cine.dcm#{i},{i % 2}" for i in range(3)] + ["cine.dcm#99,1"]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    assert [p.line for p in info.value.problems] == [5]
    assert "has no frame 99 (it has 30)" in info.value.problems[0].message
    (root / "labels.csv").write_text("\n".join(lines[:-1]) + "\n")
    dataset = load_dataset(root)
    assert {r.subject for r in dataset.records} == {"cine.dcm"}
    assert not np.array_equal(dataset.read_frame(dataset.records[0]), dataset.read_frame(dataset.records[1]))
