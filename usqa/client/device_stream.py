"""`usqa stream --device`: a capture device's newest frames to /ws/scan, as fast as the service answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import numpy as np

from usqa.client.aio import AsyncClient
from usqa.client.core import END_MESSAGE, RECV_TIMEOUT_S, encode_frame
from usqa.client.device import LatestFrameReader, crop_to_scan
from usqa.client.pacing import ScanPacer
from usqa.client.stream import OnMessage, StreamReport, hello_message


async def stream_device(
    client: AsyncClient,
    reader: LatestFrameReader,
    *,
    raw: bool = False,
    crop: bool = False,
    max_frames: int | None = None,
    max_seconds: float | None = None,
    on_message: OnMessage | None = None,
) -> StreamReport:
    """Send the reader's newest frame whenever the pacer allows, until a limit or the device's end."""
    report = StreamReport()
    pacer = ScanPacer()
    answered = asyncio.Event()
    sent_at: dict[int, float] = {}
    async with client.open_scan() as (ws, ready):
        if on_message is not None:
            on_message(ready, None)

        async def receive() -> None:
            async for text in ws:
                message = json.loads(text)
                pacer.on_message(message)
                answered.set()
                latency = report.note(message, sent_at)
                if on_message is not None:
                    on_message(message, latency)

        receiver = asyncio.create_task(receive())
        started = time.monotonic()
        raw_size: tuple[int, ...] | None = None
        try:
            while max_frames is None or report.sent < max_frames:
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
                while not pacer.may_send():
                    answered.clear()
                    async with asyncio.timeout(RECV_TIMEOUT_S):  # no task per frame, as wait_for would make
                        await answered.wait()
                taken = await asyncio.to_thread(reader.take)
                if taken is None:
                    break  # the device ended (or stalled past READ_STALL_S)
                image = await asyncio.to_thread(_prepare, taken.image, crop)
                if raw and image.shape != raw_size:  # a new crop size needs a new hello
                    raw_size = image.shape
                    await ws.send(json.dumps(hello_message(image)))
                payload = await asyncio.to_thread(encode_frame, image, raw)
                sent_at[pacer.on_sent()] = time.perf_counter()
                await ws.send(payload)
                report.sent += 1
            await ws.send(END_MESSAGE)
            await asyncio.wait_for(receiver, RECV_TIMEOUT_S)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
        report.close_code = ws.close_code
        report.close_reason = ws.close_reason or ""
    return report


def _prepare(image: np.ndarray, crop: bool) -> np.ndarray:
    return crop_to_scan(image) if crop else image
