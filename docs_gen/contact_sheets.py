"""Documentation figures of the simulator: `python -m docs_gen.contact_sheets --out docs/img`.

presets.png: a row of clean frames per preset, organ outlined (one frame per row misses the organ).
degradations.png: every degradation at low, medium and high severity on the same frame, captioned with
kind, severity and the two ground-truth labels (a = amenable for classification, s = for segmentation).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from docs_gen.blocks import write_atomically
from usqa.service.datasets.contact_sheet import contact_sheet
from usqa.service.simulator.cine import Episode, SimulatedFrame, render_frame, subject_sweep
from usqa.service.simulator.degradations import DEGRADATION_KINDS, NO_DEGRADATION
from usqa.service.simulator.presets import PRESET_NAMES

SEED = 0
SIZE = 128
FRAMES_PER_SWEEP = 40
PRESET_COLUMNS = 6
SEVERITIES = (0.25, 0.6, 0.95)
OUTLINE_BGR = (40, 40, 255)
SHORT_NAMES = {
    "acoustic_shadow": "shadow",
    "contact_loss": "contact",
    "low_gain": "low gain",
    "electronic_noise": "noise",
    "motion_blur": "motion",
    "reverberation": "reverb",
    "burned_in_overlay": "overlay",
    "partial_view": "partial",
}


def write_small_png(path: Path, image: np.ndarray) -> None:
    """Write a PNG atomically at the strongest compression: these figures are committed (< 300 KB)."""
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ValueError(f"could not encode {path.name}")
    write_atomically(path, encoded.tobytes())


def outlined(frame: SimulatedFrame) -> np.ndarray:
    """The frame in BGR with the mask's outline drawn on it."""
    tile = cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
    if frame.mask.any():
        contours, _ = cv2.findContours(frame.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, OUTLINE_BGR, 1)
    return tile


def preset_sheet() -> np.ndarray:
    images, captions = [], []
    for row, preset in enumerate(PRESET_NAMES):
        for column in range(PRESET_COLUMNS):
            subject = row * PRESET_COLUMNS + column
            sweep = subject_sweep(SEED, preset, subject, FRAMES_PER_SWEEP, SIZE, 0.0)
            if column == PRESET_COLUMNS - 1:
                frame_index = (
                    0 if sweep.profile.organ_scale(sweep.sweep_position(0)) == 0 else FRAMES_PER_SWEEP - 1
                )
            else:
                # Walk from the widest section towards the sweep's end, so sections of several sizes show.
                widest = sweep.widest_frame()
                frame_index = min(FRAMES_PER_SWEEP - 1, widest + column * 2)
            frame = render_frame(sweep, frame_index)
            images.append(outlined(frame))
            captions.append(f"{preset.split('_')[1]} {frame.subject} y={frame.label}")
    return contact_sheet(images, captions, columns=PRESET_COLUMNS, tile=SIZE)


def degradation_sheet() -> np.ndarray:
    images, captions = [], []
    # One subject per preset in turn, so each kind is shown on one preset at three severities.
    for k, kind in enumerate(DEGRADATION_KINDS):
        preset = PRESET_NAMES[k % len(PRESET_NAMES)]
        sweep = subject_sweep(SEED, preset, 100 + k, FRAMES_PER_SWEEP, SIZE, 0.0)
        frame_index = sweep.widest_frame()
        for severity in SEVERITIES:
            frame = render_frame(sweep, frame_index, Episode(frame_index, frame_index + 1, kind, severity, 0))
            images.append(outlined(frame))
            captions.append(f"{SHORT_NAMES[kind]} {severity:.2f} a{frame.amenable} s{frame.amenable_seg}")
        assert frame.degradation != NO_DEGRADATION
    return contact_sheet(images, captions, columns=2 * len(SEVERITIES), tile=SIZE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    for name, sheet in (("presets.png", preset_sheet()), ("degradations.png", degradation_sheet())):
        path = args.out / name
        write_small_png(path, sheet)
        print(f"wrote {path} ({sheet.shape[1]}x{sheet.shape[0]}, {path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
