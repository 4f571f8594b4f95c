"""A DICOM listener (C-STORE SCP) that scanners and PACSs push ultrasound cines to (issue #26, item 3).

`usqa listen --port 11112 --url ws://HOST:8000/ws/scan`: an application entity (AE title USQA by default)
that accepts image storage. The instances of one association are held in memory, bounded in count and bytes
(past either, the next C-STORE answers "out of resources", 0xA700); when the association is released, each
received series is decoded here, within the same frame budgets as the service (pixels, frames, decoded
pixels, seconds), and streamed to /ws/scan at the cine's own frame rate, as a scanner would, with its study
and instance UIDs in the hello. The service scores it with the served model and files its captures and SR
in the study, to the PACS when USQA_PACS_URL is set (docs/pacs.md): the same objects as a live stream.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    RLELossless,
)
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from usqa.client.aio import AsyncClient
from usqa.client.stream import StreamReport
from usqa.service.frames import FrameError, TooManyFramesError, decode_bytes
from usqa.service.frames.dicom_uids import read_instance_uids, read_study_identity

log = logging.getLogger(__name__)

DEFAULT_AE_TITLE = "USQA"
DEFAULT_FPS = 30.0
MSG_TOO_MANY_FRAMES = "the series holds more than {limit} frames"
MSG_UNREADABLE = "{count} instance(s) whose header could not be read were left out"
# Associations served at once: each may hold `ListenerLimits.max_bytes` until it is released.
MAX_ASSOCIATIONS = 4
# C-STORE statuses (PS3.4 B.2.3).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
# Transfer syntaxes whose pixel data usqa decodes (pydicom with the pylibjpeg plugins): what scanners send.
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]


@dataclass(frozen=True)
class ListenerLimits:
    """What one association may hold, and what decoding one series may cost (the service's own limits)."""

    max_instances: int = 512
    max_bytes: int = 256 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_frames: int = 5000
    max_decoded_pixels: int = 128 * 1024 * 1024
    max_decode_s: float = 10.0


@dataclass
class Received:
    """The instances of one association, as Part 10 bytes, with the running total."""

    instances: list[bytes] = field(default_factory=list)
    nbytes: int = 0


@dataclass(frozen=True)
class SeriesOutcome:
    series_instance_uid: str
    frames: int
    report: StreamReport | None
    error: str | None = None


def frame_rate(dataset: pydicom.Dataset) -> float:
    """The cine's frames per second from its header (Frame Time, Cine Rate, Recommended Display Frame Rate)."""
    try:
        frame_time_ms = float(dataset.get("FrameTime") or 0)
        if frame_time_ms > 0:
            return 1000.0 / frame_time_ms
        rate = float(dataset.get("CineRate") or dataset.get("RecommendedDisplayFrameRate") or 0)
    except (TypeError, ValueError):
        return DEFAULT_FPS
    return rate if rate > 0 else DEFAULT_FPS


class DicomListener:
    """The C-STORE SCP: `start()` serves in background threads, `stop()` ends it; `on_series` sees each
    outcome (tests, logs)."""

    def __init__(
        self,
        url: str,
        *,
        host: str = "0.0.0.0",
        port: int = 11112,
        ae_title: str = DEFAULT_AE_TITLE,
        token: str | None = None,
        model: str | None = None,
        limits: ListenerLimits = ListenerLimits(),
        on_series: Callable[[SeriesOutcome], None] | None = None,
    ) -> None:
        self.url, self.token, self.model, self.limits = url, token, model, limits
        self.address = (host, port)
        self.on_series = on_series
        self._received: dict[int, Received] = {}
        self._lock = threading.Lock()
        self.ae = AE(ae_title=ae_title)
        self.ae.maximum_associations = MAX_ASSOCIATIONS
        for context in StoragePresentationContexts:
            if context.abstract_syntax is not None:
                self.ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        self._server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> DicomListener:
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),  # what an aborted association sent is dropped, not scored
        ]
        self._server = self.ae.start_server(self.address, block=False, evt_handlers=handlers)
        log.info(
            "DICOM listener %s on %s:%d, streaming to %s",
            self.ae.ae_title,
            *self.address[:1],
            self.port,
            self.url,
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- events (pynetdicom calls them in the association's thread) --------------------------------------

    def _on_store(self, event: Any) -> int:
        data = bytes(event.encoded_dataset())
        key = id(event.assoc)
        with self._lock:
            received = self._received.setdefault(key, Received())
            if (
                len(received.instances) >= self.limits.max_instances
                or received.nbytes + len(data) > self.limits.max_bytes
            ):
                log.warning(
                    "refusing an instance: the association holds %d instances, %d bytes",
                    len(received.instances),
                    received.nbytes,
                )
                return OUT_OF_RESOURCES
            received.instances.append(data)
            received.nbytes += len(data)
        return SUCCESS

    def _on_aborted(self, event: Any) -> None:
        with self._lock:
            self._received.pop(id(event.assoc), None)

    def _on_released(self, event: Any) -> None:
        with self._lock:
            received = self._received.pop(id(event.assoc), None)
        if received is None or not received.instances:
            return
        for outcome in self.score(received.instances):
            if outcome.error is not None:
                log.error("series %s not scored: %s", outcome.series_instance_uid, outcome.error)
            if self.on_series is not None:
                self.on_series(outcome)

    # -- scoring -----------------------------------------------------------------------------------------

    def score(self, instances: list[bytes]) -> list[SeriesOutcome]:
        """Stream each series of these Part 10 files to the service, one after the other."""
        series: dict[str, list[tuple[int, bytes, pydicom.Dataset]]] = {}
        unreadable = 0
        for data in instances:
            try:
                header = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), stop_before_pixels=True)
                uid = str(header.get("SeriesInstanceUID", "") or "unknown")
                number = int(header.get("InstanceNumber") or 0)
            except Exception:  # pydicom raises many types on a bad header: the instance is left out, said
                unreadable += 1
                continue
            series.setdefault(uid, []).append((number, data, header))
        outcomes = [
            self._stream_series(uid, sorted(items, key=lambda i: i[0])) for uid, items in series.items()
        ]
        if unreadable:
            outcomes.append(SeriesOutcome("unknown", 0, None, MSG_UNREADABLE.format(count=unreadable)))
        return outcomes

    def _stream_series(self, uid: str, items: list[tuple[int, bytes, pydicom.Dataset]]) -> SeriesOutcome:
        limits = self.limits
        frames: list[np.ndarray] = []
        try:
            for _, data, _ in items:
                left = limits.max_frames - len(frames)
                if left <= 0:
                    raise TooManyFramesError(MSG_TOO_MANY_FRAMES.format(limit=limits.max_frames))
                frames += decode_bytes(
                    data,
                    "application/dicom",
                    max_pixels=limits.max_pixels,
                    max_frames=left,
                    max_decoded_pixels=limits.max_decoded_pixels,
                    max_decode_s=limits.max_decode_s,
                )
        except FrameError as exc:
            return SeriesOutcome(uid, len(frames), None, str(exc))
        first = items[0][1]
        instances = [vars(u).copy() for _, d, _ in items if (u := read_instance_uids(d)) is not None]
        study = read_study_identity(first)
        fps = frame_rate(items[0][2])

        async def play() -> StreamReport:
            async with AsyncClient(self.url, token=self.token, model=self.model) as client:
                return await client.play(
                    frames, fps=fps, dicom=instances, study=None if study is None else study.fields()
                )

        try:
            report = asyncio.run(play())
        except Exception as exc:  # the service unreachable or the stream refused: said, not raised
            return SeriesOutcome(uid, len(frames), None, f"streaming to {self.url} failed: {exc}")
        log.info(
            "series %s: %d frames streamed, session %s",
            uid,
            len(frames),
            (report.summary or {}).get("session"),
        )
        return SeriesOutcome(uid, len(frames), report)
