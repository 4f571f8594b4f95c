"""Large JPEGs are decoded at a DCT scale (issue #27 item 4): the model sees the same pixels within 2 grey levels
(0.05 on average), the served model gives the same verdicts and scores within 0.01, and geometry maps back to
the frame the client sent."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from usqa.service.frames import FrameSpec, decode_bytes, prepare_frame
from usqa.service.frames.decode import JPEG_REDUCTION_MARGIN, jpeg_reduction
from usqa.service.inference.geometry import prepare_with_geometry
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoringOptions, decode_for_spec, score_outputs
from usqa.service.simulator import simulate_cine

SIZES = [(640, 480), (1920, 1080)]


def capture_card_jpegs(width: int, height: int, frames: int = 12, seed: int = 3) -> list[bytes]:
    """Simulated frames as a capture card delivers them: the scan in the middle of a black screen, JPEG q90."""
    out = []
    for frame in simulate_cine("transrectal_prostate", frames, seed=seed, mix="standard"):
        canvas = np.zeros((height, width), np.uint8)
        side = int(height * 0.9)
        y, x = (height - side) // 2, (width - side) // 2
        canvas[y : y + side, x : x + side] = cv2.resize(
            frame.image, (side, side), interpolation=cv2.INTER_CUBIC
        )
        out.append(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return out


def full_decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def test_the_reduction_keeps_the_longer_side_at_least_four_inputs_wide() -> None:
    assert JPEG_REDUCTION_MARGIN == 4
    assert jpeg_reduction(640, 480, 64) == 2 and jpeg_reduction(1920, 1080, 64) == 4
    assert jpeg_reduction(1920, 1080, 128) == 2 and jpeg_reduction(4096, 4096, 64) == 8
    assert jpeg_reduction(255, 100, 64) == 1 and jpeg_reduction(1920, 1080, None) == 1


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_model_sees_the_same_pixels(width: int, height: int) -> None:
    spec = FrameSpec(size=64)
    for data in capture_card_jpegs(width, height):
        (reduced,) = decode_bytes(data, max_pixels=1 << 24, max_frames=1, input_size=spec.size)
        assert reduced.shape[1] == width // jpeg_reduction(width, height, spec.size) < width
        diff = np.abs(
            prepare_frame(reduced, spec).astype(int) - prepare_frame(full_decode(data), spec).astype(int)
        )
        assert diff.max() <= 2 and diff.mean() <= 0.05


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_served_model_gives_the_same_verdicts_and_geometry_maps_to_the_sent_frame(
    served_model: LoadedModel, width: int, height: int
) -> None:
    spec = served_model.spec
    jpegs = capture_card_jpegs(width, height)
    decoded = [
        decode_for_spec(
            spec, data, "image/jpeg", width=None, height=None, max_pixels=1 << 24, max_frames=1
        ).frames[0]
        for data in jpegs
    ]
    full = [prepare_with_geometry(full_decode(data), spec) for data in jpegs]
    options = ScoringOptions()
    ours = score_outputs(
        served_model, served_model.run(np.stack([f.pixels for f in decoded])), decoded, options
    )
    theirs = score_outputs(served_model, served_model.run(np.stack([f.pixels for f in full])), full, options)
    assert [a.verdict.verdict for a in ours] == [b.verdict.verdict for b in theirs]
    assert max(abs(a.display_score - b.display_score) for a, b in zip(ours, theirs, strict=True)) <= 0.01
    for a, b in zip(decoded, full, strict=True):
        assert (a.geometry.source_width, a.geometry.source_height) == (width, height)
        corners = np.array([[0.0, 0.0], [spec.size, spec.size]])
        assert np.abs(a.geometry.to_source(corners) - b.geometry.to_source(corners)).max() <= 8
