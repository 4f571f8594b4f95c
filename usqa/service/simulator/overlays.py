"""Burned-in overlays: what a screen capture carries besides the echo (text, calipers, bars, result boxes).

They are drawn in screen space after scan conversion, like the scanner's graphics plane, and they hide
the pixels they cover: visibility there is 0. Mild severity keeps them in the black margins (header text,
a grey bar); heavier severity adds calipers on the organ, labels and markers inside the field, and at the
top end a measurement-results box over part of the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from usqa.service.simulator.presets import REFERENCE_SIZE
from usqa.service.simulator.state import FrameState

FONT = cv2.FONT_HERSHEY_PLAIN
HEADER_TEXT = {
    "transrectal_prostate": ("TRUS 7.5MHz", "PROSTATE TRV"),
    "linear_thyroid": ("L12-5 THY", "THYROID LT"),
    "curvilinear_abdomen": ("C5-2 ABD", "RT KIDNEY"),
}
ANNOTATIONS = ("LT", "RT", "TRV", "SAG", "MID", "BASE", "APEX", "LESION?", "CYST", "X")
# Severity from which each element appears.
CALIPERS_FROM = 0.3
LABEL_FROM = 0.45
RESULTS_BOX_FROM = 0.7


def _text(ink: np.ndarray, text: str, origin: tuple[int, int], scale: float, value: int) -> None:
    cv2.putText(ink, text, origin, FONT, scale, value, 1, cv2.LINE_8)


def _caliper(ink: np.ndarray, col: int, row: int, arm: int, value: int) -> None:
    cv2.line(ink, (col - arm, row), (col + arm, row), value, 1)
    cv2.line(ink, (col, row - arm), (col, row + arm), value, 1)


def _dotted_line(ink: np.ndarray, start: np.ndarray, stop: np.ndarray, step: int, value: int) -> None:
    length = float(np.hypot(*(stop - start)))
    for s in np.arange(step, length - step, step):
        point = start + (stop - start) * s / length
        ink[int(point[1]), int(point[0])] = value


def _field_point(rng: np.random.Generator, fan: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(fan)
    k = int(rng.integers(rows.size))
    return int(cols[k]), int(rows[k])


def burn_in_overlays(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """Draw the overlays into the frame and return visibility (0 under the graphics, 1 elsewhere)."""
    assert state.image is not None
    scan = state.scan
    size = scan.size
    scale = size / REFERENCE_SIZE
    font_scale = 0.6 * scale
    # The graphics plane: 0 means "no graphics here", any other value is the grey level drawn.
    ink = np.zeros((size, size), np.uint8)
    bright = int(rng.integers(200, 256))

    top_left, top_right = HEADER_TEXT.get(state.subject.preset.name, ("US", "SCAN"))
    _text(ink, top_left, (round(2 * scale), round(8 * scale)), font_scale, bright)
    _text(
        ink,
        f"{top_right[:6]} G{int(rng.integers(40, 70))}",
        (round(size * 0.55), round(8 * scale)),
        font_scale,
        bright,
    )

    # A grey bar (the display's grey map) down one side.
    bar_col = round(size * 0.94)
    bar_top, bar_bottom = round(size * 0.15), round(size * 0.5)
    gradient = np.linspace(255, 16, bar_bottom - bar_top).astype(np.uint8)[:, None]
    ink[bar_top:bar_bottom, bar_col : bar_col + max(2, round(3 * scale))] = gradient

    organ = state.organ
    if organ is not None and severity >= CALIPERS_FROM:
        # Calipers at the ends of the organ's long axis, as when its width is measured.
        cols, rows = scan.to_pixels(
            organ.centre_x + np.array([-1, 1]) * organ.semi_major * np.cos(organ.rotation),
            organ.centre_y + np.array([-1, 1]) * organ.semi_major * np.sin(organ.rotation),
        )
        ends = np.clip(np.stack([cols, rows], axis=1), 3, size - 4).astype(int)
        for col, row in ends:
            _caliper(ink, int(col), int(row), max(2, round(3 * scale)), bright)
        if severity >= 0.5:
            _dotted_line(ink, ends[0].astype(float), ends[1].astype(float), max(2, round(3 * scale)), bright)

    if severity >= LABEL_FROM:
        for _ in range(1 + round(3 * (severity - LABEL_FROM))):
            col, row = _field_point(rng, scan.fan)
            label = ANNOTATIONS[int(rng.integers(len(ANNOTATIONS)))]
            _text(ink, label, (min(col, size - 8 * len(label)), row), font_scale * 1.1, bright)

    if severity >= RESULTS_BOX_FROM:
        # The measurement results box: opaque, and the larger the worse.
        width = round(size * (0.3 + 0.25 * (severity - RESULTS_BOX_FROM) / (1 - RESULTS_BOX_FROM)))
        height = round(width * 0.55)
        # Scanners put it in a corner of the screen; the bigger it is, the more of the field it covers.
        col = 1 if rng.random() < 0.5 else size - width - 1
        row = round(size * 0.08) if rng.random() < 0.25 else size - height - 1
        cv2.rectangle(ink, (col, row), (col + width - 1, row + height - 1), 40, -1)
        cv2.rectangle(ink, (col, row), (col + width - 1, row + height - 1), bright, 1)
        for line in range(2):
            value = rng.uniform(0.5, 6.0)
            origin = (col + round(3 * scale), row + round((10 + 10 * line) * scale))
            _text(ink, f"D{line + 1} {value:.2f}cm", origin, font_scale, bright)

    drawn = ink > 0
    state.image = np.where(drawn, ink, state.image).astype(np.uint8)
    # Only the drawn pixels are lost: a reader sees the tissue beside a one-pixel stroke.
    return np.where(drawn, 0, 1).astype(np.float32) * scan.fan
