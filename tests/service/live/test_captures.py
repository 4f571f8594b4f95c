from __future__ import annotations

import itertools

import cv2
import numpy as np

from usqa.service.live.captures import Capture, CaptureKeeper, FrameBytes, frame_png
from usqa.service.live.session_store import SessionRecord
from usqa.service.live.sessions import ScanSessionStats

from ..conftest import frame_of_level, png_bytes
from .conftest import stream_result


def capture(time_s: float, score: float) -> Capture:
    return Capture(
        frame=int(time_s * 10), time_s=time_s, score=score, verdict="good", source=None, max_pixels=1
    )


def test_near_duplicates_are_not_both_kept() -> None:
    keeper = CaptureKeeper(limit=3, spacing_s=1.0)
    assert keeper.offer(capture(0.0, 0.8))
    assert not keeper.offer(capture(0.5, 0.7))  # a worse frame within a second of a kept one
    assert keeper.offer(capture(0.9, 0.9))  # a better one replaces it
    assert [(c.time_s, c.score) for c in keeper.captures] == [(0.9, 0.9)]


def test_the_best_frames_at_least_the_spacing_apart_are_kept() -> None:
    rng = np.random.default_rng(7)
    keeper = CaptureKeeper(limit=4, spacing_s=1.0)
    offered = [(round(t * 0.1, 2), float(s)) for t, s in enumerate(rng.uniform(0, 1, 200))]
    for t, s in offered:
        keeper.offer(capture(t, s))
    kept = keeper.captures
    assert len(kept) == 4
    times = sorted(c.time_s for c in kept)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
    assert [c.score for c in kept] == sorted((c.score for c in kept), reverse=True)
    assert kept[0].score == max(s for _, s in offered)  # the very best frame is always among them


def test_out_of_scope_and_no_signal_frames_are_never_captured() -> None:
    record = SessionRecord(ScanSessionStats(reference=None), captures=5, spacing_s=0.0, max_pixels=10**6)
    frame = FrameBytes(png_bytes(frame_of_level(120, (16, 16))))
    for seq, verdict in enumerate(["no_signal", "out_of_scope", "no_signal"]):
        assert not record.on_result(stream_result(seq, 0.99, verdict), seq * 0.1, frame)
    # A dark frame inside a good run: the verdict still says good, the frame itself has no signal.
    assert not record.on_result(stream_result(3, 0.99, has_signal=False), 0.3, frame)
    assert record.on_result(stream_result(4, 0.5), 0.4, frame)
    assert [c.frame for c in record.keeper.captures] == [4]


def test_a_capture_is_encoded_as_png_once() -> None:
    image = frame_of_level(90, (12, 20), seed=3)
    kept = Capture(0, 0.0, 0.9, "good", FrameBytes(image.tobytes(), 20, 12), max_pixels=10**6)
    first = kept.png()
    assert kept.source is None and kept.png() is first and kept.nbytes == len(first)
    decoded = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded, image)
    png = png_bytes(image)
    assert frame_png(FrameBytes(png), 10**6) is png  # a PNG is kept as sent


def pictured(time_s: float, score: float, picture: np.ndarray) -> Capture:
    return Capture(
        frame=int(time_s * 10),
        time_s=time_s,
        score=score,
        verdict="good",
        source=None,
        max_pixels=1,
        picture=picture.astype(np.float32),
    )


def test_the_same_picture_is_kept_once_however_far_apart() -> None:
    rng = np.random.default_rng(1)
    clip = [rng.integers(0, 256, (32, 32)) for _ in range(5)]
    scores = [0.5, 0.9, 0.7, 0.8, 0.6]
    keeper = CaptureKeeper(limit=3, spacing_s=0.0)
    for loop in range(4):  # a replayed cine: the same pictures with the same scores, again and again
        for i, picture in enumerate(clip):
            keeper.offer(pictured(loop * 10 + i, scores[i], picture))
    kept = keeper.captures
    assert [c.score for c in kept] == [0.9, 0.8, 0.7] and [c.time_s for c in kept] == [1, 3, 2]  # first met
    # Slightly different (a re-encoding): still the same picture, and a better score replaces it.
    assert keeper.offer(pictured(50, 0.95, clip[1] + 0.4))
    assert [c.time_s for c in keeper.captures] == [50, 3, 2]
    # Without pictures (older callers) only time tells.
    assert CaptureKeeper(limit=3, spacing_s=0.0).would_keep(0.0, 0.5)
