"""The reference /ws/scan client: plays a cine at a fixed frame rate and measures round-trip latency.

Frames are encoded (PNG) or raw up front, so the pacing measures the service, not the client's encoder.
The sender keeps its schedule whatever the answers do (a scanner does not wait), and the receiver matches
results to send times by `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from usqa.service.live.sessions import percentiles_ms

RESULT_TIMEOUT_S = 30.0


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
        if message["type"] == "result":
            self.results += 1
            seq = message["seq"]
            if seq in sent_at:
                latency = (time.perf_counter() - sent_at.pop(seq)) * 1000
                self.latencies_ms.append(latency)
            version = message["model"]["version"]
            if not self.versions or self.versions[-1] != version:
                self.versions.append(version)
        elif message["type"] == "error":
            self.errors += 1
        elif message["type"] == "model_swap":
            self.swaps.append(message)
        elif message["type"] == "summary":
            self.summary = message
        return latency


def hello_message(raw_frame: np.ndarray | None, dicom: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """The hello: raw frames' size (when `raw_frame` is given) and the DICOM instances of the source."""
    hello: dict[str, Any] = {"type": "hello"}
    if raw_frame is not None:
        height, width = raw_frame.shape[:2]
        hello |= {"format": "raw", "width": width, "height": height}
    if dicom:
        hello["dicom"] = list(dicom)
    return hello


def encode_frame(frame: np.ndarray, raw: bool) -> bytes:
    if raw:
        return np.ascontiguousarray(frame).tobytes()
    ok, data = cv2.imencode(".png", frame)
    if not ok:
        raise ValueError("could not encode a frame as PNG")
    return bytes(data.tobytes())


def encode_frames(frames: Sequence[np.ndarray], raw: bool) -> list[bytes]:
    return [encode_frame(frame, raw) for frame in frames]


OnMessage = Callable[[dict[str, Any], float | None], None]


@contextlib.asynccontextmanager
async def open_scan(
    url: str, token: str | None, max_message_bytes: int, on_message: OnMessage | None
) -> AsyncIterator[Any]:
    """A /ws/scan connection past its `ready` message (shown to `on_message`), for every streaming client."""
    import websockets

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with websockets.connect(url, additional_headers=headers, max_size=max_message_bytes) as ws:
        ready = json.loads(await asyncio.wait_for(ws.recv(), RESULT_TIMEOUT_S))
        if ready.get("type") != "ready":
            raise RuntimeError(f"expected a ready message, got {ready}")
        if on_message is not None:
            on_message(ready, None)
        yield ws


async def stream_frames(
    url: str,
    frames: Sequence[np.ndarray],
    *,
    fps: float,
    raw: bool = False,
    token: str | None = None,
    on_message: Callable[[dict[str, Any], float | None], None] | None = None,
    max_message_bytes: int = 64 * 1024 * 1024,
    until: Callable[[], bool] | None = None,
    dicom: Sequence[dict[str, str]] = (),
) -> StreamReport:
    """Send `frames` (uint8 grayscale) at `fps`, then `end`; collect results, swaps and the summary.

    With `until`, the frames play in a loop (as a probe keeps imaging) until `until()` is true. `dicom`
    names the DICOM instances the frames were read from (their UIDs reach the session report).
    """
    payloads = encode_frames(frames, raw)
    report = StreamReport()
    sent_at: dict[int, float] = {}
    async with open_scan(url, token, max_message_bytes, on_message) as ws:

        async def receive() -> None:
            async for text in ws:
                message = json.loads(text)
                latency = report.note(message, sent_at)
                if on_message is not None:
                    on_message(message, latency)

        receiver = asyncio.create_task(receive())
        try:
            if (raw and frames) or dicom:
                await ws.send(json.dumps(hello_message(frames[0] if raw and frames else None, dicom)))
            period = 1.0 / fps if fps > 0 else 0.0
            start = time.perf_counter()
            seq = 0
            while payloads and (seq < len(payloads) if until is None else not until()):
                delay = start + seq * period - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[seq] = time.perf_counter()
                await ws.send(payloads[seq % len(payloads)])
                report.sent += 1
                seq += 1
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(receiver, RESULT_TIMEOUT_S)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
        report.close_code = ws.close_code
        report.close_reason = ws.close_reason or ""
    return report


def format_result(message: dict[str, Any], latency_ms: float | None) -> str:
    """One line of live feedback, as `usqa stream` prints it."""
    kind = message["type"]
    if kind == "result":
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
    if kind == "model_swap":
        return f"model swap: version {message['from_version']} -> {message['to_version']}"
    if kind == "error":
        return f"error (frame {message['seq']}): {message['message']}"
    if kind == "ready":
        m = message["model"]
        return f"connected: {m['name']} version {m['version']} ({m['task']}), threshold {message['threshold']:.3f}"
    return json.dumps(message)
