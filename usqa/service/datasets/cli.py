"""`usqa inspect DIR`: validate a data set, print its counts and write a contact sheet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from usqa.service.datasets.contact_sheet import contact_sheet, write_png
from usqa.service.datasets.labels import DatasetError, FrameRecord, LabelledDataset, load_dataset
from usqa.service.datasets.splits import SPLITS

MASK_OUTLINE_BGR = (60, 200, 255)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inspect", help="validate a data-set folder, print its counts and write a contact sheet"
    )
    parser.add_argument("data", type=Path, help="data-set folder (with labels.csv)")
    parser.add_argument(
        "--sheet", type=Path, help="contact sheet PNG (default: runs/inspect/<folder name>.png)"
    )
    parser.add_argument("--max-frames", type=int, default=48, help="frames on the contact sheet")
    parser.set_defaults(handler=run)


def sample_for_sheet(dataset: LabelledDataset, n: int) -> list[FrameRecord]:
    """Up to `n` frames spread evenly over the data set, so every split and label shows."""
    records = sorted(dataset.records, key=lambda r: (SPLITS.index(r.split), r.label, r.line))
    if len(records) <= n:
        return records
    picks = np.linspace(0, len(records) - 1, n).round().astype(int)
    return [records[i] for i in picks]


def render_sheet(dataset: LabelledDataset, records: list[FrameRecord]) -> np.ndarray:
    tiles, captions = [], []
    for record in records:
        tile = cv2.cvtColor(dataset.read_frame(record), cv2.COLOR_GRAY2BGR)
        mask = dataset.read_mask(record)
        if mask is not None and mask.any():
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, MASK_OUTLINE_BGR, max(1, tile.shape[0] // 128))
        amenable = "?" if record.amenable is None else str(record.amenable)
        tiles.append(tile)
        captions.append(f"{record.split[:4]} y={record.label} a={amenable}")
    return contact_sheet(tiles, captions)


def format_counts(dataset: LabelledDataset) -> str:
    lines = [
        f"{dataset.root}: {len(dataset.records)} frames, {len({r.subject for r in dataset.records})} subjects"
    ]
    for split, counts in dataset.counts().items():
        lines.append(f"  {split:8s} " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        dataset = load_dataset(args.data)
    except DatasetError as exc:
        print(f"usqa inspect: {exc}", file=sys.stderr)
        return 1
    print(format_counts(dataset))
    sheet_path = args.sheet or Path("runs/inspect") / f"{args.data.resolve().name}.png"
    write_png(sheet_path, render_sheet(dataset, sample_for_sheet(dataset, args.max_frames)))
    print(f"contact sheet: {sheet_path}")
    return 0
