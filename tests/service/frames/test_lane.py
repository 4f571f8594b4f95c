"""The decode lane and the decode time limit (issue 28): whole-file decodes run in a bounded pool of their own
and stop between frames past their time limit."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from functools import partial

import numpy as np
import psutil
import pytest

from tests.support import hostile_dicom
from usqa.service.frames import CorruptFrameError, DecodeTimeoutError, decode_bytes
from usqa.service.frames.decode import within_budget
from usqa.service.frames.lane import DecodeLane, DecodeLaneFullError


def test_the_lane_runs_work_and_refuses_past_its_bound() -> None:
    lane = DecodeLane(workers=1, max_waiting=1, processes=False)
    release = threading.Event()

    async def scenario() -> list[object]:
        blocked = [asyncio.ensure_future(lane.run(release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert lane.busy == 2
        with pytest.raises(DecodeLaneFullError, match="2 file decodes running or waiting"):
            await lane.run(lambda: None)
        release.set()
        done = await asyncio.gather(*blocked)
        return [*done, await lane.run(lambda: "after")]

    try:
        assert asyncio.run(scenario()) == [True, True, "after"]
        assert lane.busy == 0
    finally:
        lane.close()


def test_the_lane_runs_decodes_in_its_own_threads() -> None:
    lane = DecodeLane(workers=1, max_waiting=0, processes=False)
    try:
        name = asyncio.run(lane.run(lambda: threading.current_thread().name))
    finally:
        lane.close()
    assert name.startswith("usqa-decode")


def test_the_lane_decodes_in_a_process_of_its_own() -> None:
    lane = DecodeLane(workers=1, max_waiting=0)
    data = hostile_dicom.excess_frames(3, side=16, declared=3)
    decode = partial(decode_bytes, data, max_pixels=1024, max_frames=10)
    try:
        pid = asyncio.run(lane.run(os.getpid))
        frames = asyncio.run(lane.run(decode))
        with pytest.raises(DecodeTimeoutError):  # errors come back as themselves
            asyncio.run(lane.run(partial(decode, max_decode_s=0.0)))
    finally:
        lane.close()
    assert pid != os.getpid() and len(frames) == 3


def test_a_dicom_decode_stops_past_its_time_limit() -> None:
    data = hostile_dicom.excess_frames(40, side=16, declared=40)
    with pytest.raises(DecodeTimeoutError, match="longer than the limit of 0 s") as raised:
        decode_bytes(data, max_pixels=1024, max_frames=100, max_decode_s=0.0)
    assert raised.value.code == "decode_time_exceeded"
    assert len(decode_bytes(data, max_pixels=1024, max_frames=100, max_decode_s=60.0)) == 40


def test_video_frames_stop_past_their_time_limit() -> None:
    frames = (np.zeros((4, 4), np.uint8) for _ in range(3))
    with pytest.raises(DecodeTimeoutError):
        list(within_budget(frames, None, 0.0))


def test_a_decoder_that_crashes_its_process_refuses_that_input_and_the_lane_goes_on() -> None:
    lane = DecodeLane(workers=1, max_waiting=0)
    try:
        with pytest.raises(CorruptFrameError, match="the decoder stopped on this input"):
            asyncio.run(lane.run(partial(os._exit, 1)))  # what a segfault in a codec looks like from here
        assert asyncio.run(lane.run(partial(abs, -3))) == 3
    finally:
        lane.close()


def test_closing_a_process_lane_ends_its_process_even_mid_decode() -> None:
    """`usqa serve` exiting left the lane's process orphaned (about one stop in two after large uploads)."""
    lane = DecodeLane(workers=1, max_waiting=1, processes=True)

    async def scenario() -> int:
        pid = await lane.run(os.getpid)
        running = asyncio.ensure_future(lane.run(partial(time.sleep, 30)))  # not over when the lane closes
        await asyncio.sleep(0.2)
        lane.close()
        assert isinstance((await asyncio.gather(running, return_exceptions=True))[0], Exception)
        return pid

    pid = asyncio.run(scenario())
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(pid).status()  # joined by close(): gone at once, not a zombie
