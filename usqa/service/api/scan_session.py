"""One /ws/scan stream: receive frames, keep only the newest pending, score, guide, summarise.

Two tasks per stream. The receiver reads every message as it arrives and puts frames into a one-slot
mailbox (a newer frame replaces an older unscored one, which is counted as dropped). The scorer takes the
newest frame, has the shared inference queue decode and score it (off the event loop), updates the
guidance and sends the result. So a slow moment costs dropped frames, never a growing backlog, and feedback stays current.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from usqa.contracts.protocol import CloseCode, MessageType, StreamErrorCode
from usqa.service.api.metrics import ENDPOINT_SCAN, REASON_ERROR, REASON_REJECTED
from usqa.service.api.scan_messages import (
    MSG_BAD_HELLO,
    MSG_BAD_JSON,
    MSG_FIRST_MESSAGE_REASON,
    MSG_FRAME_INTERNAL_ERROR,
    MSG_IDLE_REASON,
    MSG_NO_MODEL_REASON,
    MSG_TOO_BIG,
    MSG_TOO_BIG_REASON,
    MSG_UNKNOWN_TYPE,
    ScanHello,
    ShownType,
    configured_message,
    error_message,
    model_swap_message,
    ready_message,
    result_message,
)
from usqa.service.api.state import ServiceState
from usqa.service.frames import RAW_MEDIA_TYPE, FrameError
from usqa.service.frames.dicom_uids import InstanceUids
from usqa.service.inference.batcher import QueueStoppedError
from usqa.service.inference.guidance import GuidanceTracker, guidance_config
from usqa.service.inference.holder import ModelHolder, SwapOutcome
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoringOptions
from usqa.service.inference.served_models import ModelNotServedError, StreamHints
from usqa.service.inference.verdict import FrozenCounter, frozen_verdict
from usqa.service.live.captures import FrameBytes
from usqa.service.live.drift import score_reference
from usqa.service.live.mailbox import LatestFrameSlot
from usqa.service.live.results import StreamResult
from usqa.service.live.session_store import SessionRecord
from usqa.service.live.sessions import ScanSessionStats
from usqa.service.record.filing import file_scan
from usqa.service.record.outbox import Outbox

log = logging.getLogger(__name__)

# After `end`, the pending frame gets this long to finish before the summary goes out regardless.
DRAIN_TIMEOUT_S = 5.0
STREAM_OPTIONS = ScoringOptions(outline=True)


@dataclass(frozen=True)
class IncomingFrame:
    seq: int
    data: bytes
    hello: ScanHello
    received: float


class ScanSession:
    """The protocol of one accepted stream; `run` returns when the stream is over."""

    def __init__(
        self, websocket: WebSocket, service: ServiceState, holder: ModelHolder, model: LoadedModel
    ) -> None:
        self.ws = websocket
        self.service = service
        self.holder = holder  # the exam's: a hello naming another model moves the session to its holder
        self._unsubscribe: Callable[[], None] = lambda: None  # from the holder's swaps, once `run` subscribes
        self.metrics = service.metrics
        self.model = model
        self.guidance = GuidanceTracker(guidance_config(service.settings))
        self.frozen = FrozenCounter(service.settings.no_signal_frozen_frames)
        self.hints = StreamHints(service.models)
        self.stats = ScanSessionStats(reference=score_reference(model.manifest))
        settings = service.settings
        self.record = SessionRecord(
            self.stats,
            captures=settings.captures_per_session,
            spacing_s=settings.capture_spacing_s,
            max_pixels=settings.max_frame_pixels,
            same_picture_level=settings.capture_same_picture_level,
        )
        self.slot: LatestFrameSlot[IncomingFrame] = LatestFrameSlot()
        self.hello = ScanHello()
        self._send_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._client_gone = False
        self._close_code: int = CloseCode.NORMAL
        self._close_reason = ""

    async def run(self) -> None:
        self.service.records.open(self.record)
        self._unsubscribe = self.holder.subscribe(self._on_model_event)
        self.record.model_name = self.model.name
        latest = self.holder.current  # a swap between the route's look and the subscription
        if latest is not None and latest is not self.model:
            self.model = latest
            self.stats.rebase(score_reference(latest.manifest))
        scorer = asyncio.create_task(self._score_loop(), name=f"usqa-scan-{self.stats.session_id}")
        try:
            settings = self.service.settings
            ready = ready_message(
                self.stats.session_id, self.model, self.guidance.config, settings.max_ws_message_bytes
            )
            await self._send(ready)
            await self._receive_loop()
            self.slot.close()
            if self._client_gone:
                scorer.cancel()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(scorer), DRAIN_TIMEOUT_S)
                await self._send(self.stats.summary())
                await self._close(self._close_code, self._close_reason)
        finally:
            self._unsubscribe()
            scorer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await scorer
            for task in list(self._background):
                task.cancel()
            self._finish()

    # -- receiving ---------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        settings = self.service.settings
        limit = settings.max_ws_message_bytes
        seq = 0
        clock = asyncio.get_running_loop().time
        opened = last_frame = clock()
        first = True
        while True:
            # A slot is not held by silence: the first message (hello or frame) has its deadline, and
            # after it a frame must come every `scan_idle_timeout_s` (hellos alone do not keep it open).
            deadline = last_frame + settings.scan_idle_timeout_s
            if first:
                deadline = min(deadline, opened + settings.scan_first_message_s)
            try:
                async with asyncio.timeout(max(deadline - clock(), 0.0)):  # no task per message
                    message = await self.ws.receive()
            except TimeoutError:
                self._close_code = CloseCode.POLICY
                self._close_reason = (
                    MSG_FIRST_MESSAGE_REASON.format(seconds=settings.scan_first_message_s)
                    if first
                    else MSG_IDLE_REASON.format(seconds=settings.scan_idle_timeout_s)
                )
                self.metrics.sessions_timed_out.inc()
                return
            except (WebSocketDisconnect, RuntimeError):
                self._client_gone = True
                return
            first = False
            if message["type"] == "websocket.disconnect":
                self._client_gone = True
                return
            data: bytes | None = message.get("bytes")
            text: str | None = message.get("text")
            size = len(data) if data is not None else len((text or "").encode())
            if size > limit:
                await self._send_error(
                    None, StreamErrorCode.MESSAGE_TOO_BIG, MSG_TOO_BIG.format(size=size, limit=limit)
                )
                self._close_code, self._close_reason = CloseCode.TOO_BIG, MSG_TOO_BIG_REASON
                return
            if data is not None:
                last_frame = clock()
                self.stats.received += 1
                self.metrics.frames_received.inc()
                displaced = self.slot.put(IncomingFrame(seq, data, self.hello, time.perf_counter()))
                seq += 1
                if displaced is not None:
                    self.stats.dropped += 1
                    self.metrics.frames_dropped.inc()
            elif text is not None and await self._on_text(text):
                return

    async def _on_text(self, text: str) -> bool:
        """Handle a control message; True when the client asked to end the stream."""
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):  # bad JSON, a number past Python's digit limit, deep nesting
            raw = None
        if not isinstance(raw, dict) or "type" not in raw:
            await self._send_error(None, StreamErrorCode.BAD_MESSAGE, MSG_BAD_JSON)
            return False
        kind = raw["type"]
        if kind == MessageType.END:
            return True
        if kind != MessageType.HELLO:
            await self._send_error(
                None, StreamErrorCode.BAD_MESSAGE, MSG_UNKNOWN_TYPE.format(type=ShownType(kind))
            )
            return False
        try:
            self.hello = ScanHello.model_validate(raw)
        except ValidationError as exc:
            reason = "; ".join(e["msg"] for e in exc.errors())
            await self._send_error(None, StreamErrorCode.BAD_HELLO, MSG_BAD_HELLO.format(reason=reason))
            return False
        for instance in self.hello.dicom:
            self.record.add_dicom(InstanceUids(**instance.model_dump()))
        if self.hello.study is not None:
            self.record.study_fields = self.hello.study.model_dump(exclude_none=True)
        if self.hello.model is not None and self.hello.model != self.model.name:
            await self._switch_exam(self.hello.model)
        await self._send(configured_message(self.hello))
        return False

    # -- scoring -----------------------------------------------------------------------------------------

    async def _score_loop(self) -> None:
        while (frame := await self.slot.get()) is not None:
            try:
                await self._score(frame)
            except QueueStoppedError:
                return

    async def _score(self, frame: IncomingFrame) -> None:
        model = self.holder.current or self.model
        scoring = self.metrics.scoring(model.name, model.number, ENDPOINT_SCAN)
        raw = frame.hello.format == "raw"
        try:
            batch = await self.service.scorer.score(
                model,
                frame.data,
                RAW_MEDIA_TYPE if raw else None,
                STREAM_OPTIONS,
                width=frame.hello.width if raw else None,
                height=frame.hello.height if raw else None,
                single_frame=True,
                admit_when_full=True,
            )
        except FrameError as exc:
            self.stats.failed += 1
            scoring.failure(REASON_REJECTED).inc()
            await self._send_error(frame.seq, exc.code, str(exc))
            return
        except QueueStoppedError:
            raise
        except Exception:  # a fault of ours: this frame fails, the stream goes on
            log.exception("scoring a stream frame failed")
            self.stats.failed += 1
            scoring.failure(REASON_ERROR).inc()
            await self._send_error(frame.seq, StreamErrorCode.INTERNAL_ERROR, MSG_FRAME_INTERNAL_ERROR)
            return
        scored = batch.frames[0]
        verdict = scored.verdict
        if self.frozen.add(scored.signal.digest):
            verdict = frozen_verdict(verdict)
        looks_like = await self.hints.hint(model, scored)
        update = self.guidance.update(verdict, scored.display_score, scored.display_threshold)
        result = StreamResult(
            seq=frame.seq,
            scored=scored,
            verdict=verdict,
            update=update,
            timing=batch.timing,
            total_s=time.perf_counter() - frame.received,
            dropped=self.stats.dropped,
            model_name=model.name,
            model_version=model.number,
            looks_like=looks_like,
        )
        sent = (
            FrameBytes(frame.data, frame.hello.width, frame.hello.height) if raw else FrameBytes(frame.data)
        )
        # Decided before the result goes out, so the result can tell the client its strip changed.
        captured = self.record.on_result(result, self.record.seconds_since_start(frame.received), sent)
        await self._send(result_message(result, self.record.capture_frames() if captured else None))
        self.stats.record_scored(result)
        self.service.record_scored(scoring, batch, result.total_s)

    # -- model swaps and exam switches --------------------------------------------------------------------

    async def _switch_exam(self, name: str) -> None:
        """Score the stream's next frames with another served model (the page's exam picker)."""
        try:
            holder = self.service.models.holder(name)
        except ModelNotServedError as exc:
            await self._send_error(None, StreamErrorCode.BAD_HELLO, MSG_BAD_HELLO.format(reason=exc))
            return
        model = holder.current
        if model is None:
            await self._send_error(
                None, StreamErrorCode.BAD_HELLO, MSG_BAD_HELLO.format(reason=MSG_NO_MODEL_REASON)
            )
            return
        self._unsubscribe()
        self.holder = holder
        self._unsubscribe = holder.subscribe(self._on_model_event)
        previous, self.model = self.model, model
        self.record.model_name = model.name
        self.stats.rebase(score_reference(model.manifest))
        self.guidance = GuidanceTracker(guidance_config(self.service.settings))  # another model's scale
        await self._send(model_swap_message(previous, model))

    def _on_model_event(self, outcome: SwapOutcome, model: LoadedModel | None) -> None:
        if outcome.status != "swapped" or model is None:
            return
        previous = self.model
        self.model = model
        self.stats.rebase(score_reference(model.manifest))
        task = asyncio.get_running_loop().create_task(self._send(model_swap_message(previous, model)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- sending and closing -----------------------------------------------------------------------------

    async def _send_error(self, seq: int | None, code: str, message: str) -> None:
        await self._send(error_message(seq, code, message))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._client_gone:
            return
        async with self._send_lock:
            try:
                await self.ws.send_text(json.dumps(message))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._client_gone = True

    async def _close(self, code: int, reason: str) -> None:
        if self._client_gone or self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(RuntimeError, OSError):
            await self.ws.close(code=code, reason=reason)

    async def _file_for_pacs(self, outbox: Outbox) -> None:
        """Write the scan's DICOM objects to the outbox (a thread) and wake the sender; never fails the scan."""
        model = self.holder.current or self.model
        try:
            if await asyncio.to_thread(file_scan, outbox, self.record, model) is not None:
                outbox.notify()
        except Exception:
            self.metrics.pacs_filing_failures.inc()
            log.exception("could not file scan session %s for the PACS", self.record.session_id)

    def _finish(self) -> None:
        records = self.service.records
        records.finish(self.record)
        loop = asyncio.get_running_loop()
        if records.folder is not None:
            # A thread of its own: PNG encoding and fsync must not hold up the other streams' frames.
            loop.run_in_executor(None, records.archive, self.record)
        if self.service.outbox is not None:
            task = loop.create_task(self._file_for_pacs(self.service.outbox))
            self.service.filing.add(task)
            task.add_done_callback(self.service.filing.discard)
        summary = self.stats.summary()
        psi = summary["drift"]["psi"]
        if psi is not None:
            self.metrics.session_drift_psi.observe(psi)
        log.info(
            "scan session %s closed: %d received, %d scored, %d dropped, %d failed, amenable %s, psi %s",
            self.stats.session_id,
            self.stats.received,
            self.stats.scored,
            self.stats.dropped,
            self.stats.failed,
            summary["amenable_fraction"],
            psi,
        )
