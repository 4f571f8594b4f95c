"""Playing a cine to /ws/scan at a fixed frame rate, as a scanner sends it, measuring round-trip latency.

Frames are encoded (PNG) or raw up front, so the pacing measures the service, not the client's encoder.
The sender keeps its schedule whatever the answers do (a scanner does not wait), and the receiver matches
results to send times by `seq`. `AsyncClient.play` opens the stream; `play_on` plays on an open one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usqa.client.core import END_MESSAGE, RECV_TIMEOUT_S, encode_frame
from usqa.client.pacing import ScanPacer
from usqa.contracts.protocol import MessageType
from usqa.service.live.sessions import percentiles_ms

# What each server message (and the `ready`) is shown to, with its round-trip latency in ms when it answers
# a frame whose send time is known.
OnMessage = Callable[[dict[str, Any], float | None], None]
# Bound once: an enum attribute costs a lookup per message, and this is the per-frame path.
RESULT, ERROR, MODEL_SWAP, SUMMARY = (
    MessageType.RESULT,
    MessageType.ERROR,
    MessageType.MODEL_SWAP,
    MessageType.SUMMARY,
)


@dataclass
class StreamReport:
    sent: int = 0
    results: int = 0
    errors: int = 0
    swaps: list[dict[str, Any]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    close_code: int | None = None
    close_reason: str = ""
    versions: list[int] = field(default_factory=list)

    @property
    def percentiles(self) -> dict[str, float | None]:
        return percentiles_ms(self.latencies_ms)

    def note(self, message: dict[str, Any], sent_at: dict[int, float]) -> float | None:
        """Count a server message; a result's round-trip latency in ms when its send time is known."""
        latency = None
        kind = message["type"]
        if kind == RESULT:
            self.results += 1
            seq = message["seq"]
            if seq in sent_at:
                latency = (time.perf_counter() - sent_at.pop(seq)) * 1000
                self.latencies_ms.append(latency)
            version = message["model"]["version"]
            if not self.versions or self.versions[-1] != version:
                self.versions.append(version)
        elif kind == ERROR:
            self.errors += 1
        elif kind == MODEL_SWAP:
            self.swaps.append(message)
        elif kind == SUMMARY:
            self.summary = message
        return latency


def hello_message(
    raw_frame: np.ndarray | None, dicom: Sequence[dict[str, str]] = (), study: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The hello: raw frames' size (when `raw_frame` is given), the DICOM instances of the source and the
    study the scan is filed in (docs/pacs.md)."""
    hello: dict[str, Any] = {"type": MessageType.HELLO}
    if raw_frame is not None:
        height, width = raw_frame.shape[:2]
        hello |= {"format": "raw", "width": width, "height": height}
    if dicom:
        hello["dicom"] = list(dicom)
    if study:
        hello["study"] = dict(study)
    return hello


def encode_frames(frames: Sequence[np.ndarray | bytes], raw: bool) -> list[bytes]:
    return [frame if isinstance(frame, bytes) else encode_frame(frame, raw) for frame in frames]


def prepared(
    frames: Sequence[np.ndarray | bytes],
    raw: bool,
    dicom: Sequence[dict[str, str]] = (),
    study: Mapping[str, str] | None = None,
) -> tuple[list[bytes], dict[str, Any] | None]:
    """A cine's payloads and its hello (None when it needs none), made before the stream opens: encoding a
    long cine takes a while, and on an open stream it would hold up every other stream of the event loop."""
    first = frames[0] if raw and frames and isinstance(frames[0], np.ndarray) else None
    hello = hello_message(first, dicom, study) if first is not None or dicom or study else None
    return encode_frames(frames, raw), hello


async def play_on(
    ws: Any,
    payloads: Sequence[bytes],
    *,
    fps: float | None,
    hello: dict[str, Any] | None = None,
    on_message: OnMessage | None = None,
    until: Callable[[], bool] | None = None,
    offset_s: float = 0.0,
) -> StreamReport:
    """Send `payloads` (see `prepared`) on an open stream (past `ready`) at `fps`, after `hello` if any, then
    `end`; collect results and the summary."""
    report = StreamReport()
    sent_at: dict[int, float] = {}
    pacer = ScanPacer() if fps is None else None  # no rate: each frame as soon as the last is answered
    answered = asyncio.Event()

    async def receive() -> None:
        try:
            async for text in ws:
                message = json.loads(text)
                latency = report.note(message, sent_at)
                if pacer is not None:
                    pacer.on_message(message)
                    answered.set()
                if on_message is not None:
                    on_message(message, latency)
        finally:
            answered.set()  # a closed stream wakes the sender too

    receiver = asyncio.create_task(receive())
    try:
        if hello is not None:
            await ws.send(json.dumps(hello))
        period = 1.0 / fps if fps else 0.0
        start = time.perf_counter() + offset_s
        seq = 0
        while payloads and (seq < len(payloads) if until is None else not until()):
            if pacer is not None:
                # No timer per frame: a stream that stops answering is closed by the WebSocket keepalive,
                # which ends the receiver, which wakes this loop.
                while not pacer.may_send():
                    if receiver.done():
                        raise ConnectionError(f"the stream closed after {report.sent} frames, one unanswered")
                    answered.clear()
                    await answered.wait()
                pacer.on_sent()
            elif (delay := start + seq * period - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            sent_at[seq] = time.perf_counter()
            await ws.send(payloads[seq % len(payloads)])
            report.sent += 1
            seq += 1
        await ws.send(END_MESSAGE)
        await asyncio.wait_for(receiver, RECV_TIMEOUT_S)
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
    report.close_code = ws.close_code
    report.close_reason = ws.close_reason or ""
    return report


async def stream_frames(
    url: str,
    frames: Sequence[np.ndarray | bytes],
    *,
    fps: float | None,
    raw: bool = False,
    token: str | None = None,
    on_message: OnMessage | None = None,
    until: Callable[[], bool] | None = None,
    dicom: Sequence[dict[str, str]] = (),
    study: Mapping[str, str] | None = None,
) -> StreamReport:
    """`AsyncClient(url, token=token).play(frames, ...)`, for a caller with a URL and no client."""
    from usqa.client.aio import AsyncClient

    async with AsyncClient(url, token=token) as client:
        return await client.play(
            frames, fps=fps, raw=raw, on_message=on_message, until=until, dicom=dicom, study=study
        )


def format_result(message: dict[str, Any], latency_ms: float | None) -> str:
    """One line of live feedback, as `usqa stream` prints it."""
    kind = message["type"]
    if kind == MessageType.RESULT:
        p = message["prediction"]
        if p["task"] == "classify":
            prediction = f"{p['label']} {p['probability']:.2f}"
        else:
            prediction = f"mask {p['mask_area_fraction']:.1%}"
        smoothed = message["smoothed_score"]
        rtt = "" if latency_ms is None else f"  rtt {latency_ms:6.1f} ms"
        captured = "  captured" if message.get("captured") else ""
        return (
            f"#{message['seq']:<5d} score {message['score']:.3f}  smoothed "
            f"{'  -  ' if smoothed is None else f'{smoothed:.3f}'}  {message['guidance']:<9s} {prediction:<18s}"
            f"server {message['latency_ms']['total']:6.1f} ms{rtt}  dropped {message['dropped']}{captured}"
        )
    if kind == MessageType.MODEL_SWAP:
        return f"model swap: version {message['from_version']} -> {message['to_version']}"
    if kind == MessageType.ERROR:
        return f"error (frame {message['seq']}): {message['message']}"
    if kind == MessageType.READY:
        m = message["model"]
        return f"connected: {m['name']} version {m['version']} ({m['task']}), threshold {message['threshold']:.3f}"
    return json.dumps(message)
