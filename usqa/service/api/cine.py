"""Cines for the live page: the built-in simulated sweep, or an uploaded DICOM / video unpacked to PNG frames.

The page then plays the frames through /ws/scan like any scanner would; browsers cannot decode DICOM, and
this keeps one decoder (the service's) for every cine.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import cv2
import numpy as np

from usqa.service.api.schemas import CineFrames
from usqa.service.frames import read_frames

DEMO_FPS = 25.0
# The shipped model's development degradation mix (Makefile, default-model).
DEMO_MIX = "evidence_loss"
DEFAULT_CINE_FPS = 25.0
PNG_DATA_URL = "data:image/png;base64,"


def png_data_url(image: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("could not encode a frame as PNG")
    return PNG_DATA_URL + base64.b64encode(encoded.tobytes()).decode("ascii")


def demo_cine(preset: str, frames: int, seed: int = 0, mix: str = DEMO_MIX) -> CineFrames:
    """A simulated sweep with degradation episodes: good and bad views for the guidance to react to.

    The degradations come from `mix`, by default the shipped model's own development mix (`evidence_loss`:
    the shadowing, dropout and blur that hide the gland; docs/simulator.md), so the demo shows the views the
    model was built to flag, not only ones it shrugs off."""
    from usqa.service.simulator.cine import simulate_cine  # the simulator is only needed for the demo

    images = [frame.image for frame in simulate_cine(preset, frames, seed=seed, mix=mix)]
    height, width = images[0].shape[:2]
    return CineFrames(
        source=f"simulated {preset} sweep, seed {seed}, {mix} degradations",
        fps=DEMO_FPS,
        width=width,
        height=height,
        frames=[png_data_url(image) for image in images],
    )


def unpack_cine(
    data: bytes,
    filename: str,
    *,
    max_pixels: int,
    max_frames: int,
    max_decoded_pixels: int | None = None,
    max_decode_s: float | None = None,
) -> CineFrames:
    """A DICOM cine, a video or an image file as PNG frames (the video decoder needs a file on disk)."""
    suffix = Path(filename).suffix.lower()[:8]
    with tempfile.TemporaryDirectory(prefix="usqa-cine-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        images = list(
            read_frames(
                path,
                max_pixels=max_pixels,
                max_frames=max_frames,
                max_decoded_pixels=max_decoded_pixels,
                max_decode_s=max_decode_s,
            )
        )
        fps = _video_fps(path) if suffix in {".mp4", ".avi", ".mov", ".mkv"} else DEFAULT_CINE_FPS
    height, width = images[0].shape[:2]
    return CineFrames(
        source=filename, fps=fps, width=width, height=height, frames=[png_data_url(image) for image in images]
    )


def _video_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    return fps if 1.0 <= fps <= 240.0 else DEFAULT_CINE_FPS
