"""The logic behind POST /assess: read a bounded body, find the frame bytes, score them, build the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.api.errors import (
    BODY_TOO_LARGE,
    INTERNAL_ERROR,
    MALFORMED_MULTIPART,
    NO_FILE_PART,
    ApiError,
    from_frame_error,
)
from service.api.metrics import (
    ENDPOINT_ASSESS,
    REASON_ERROR,
    REASON_QUEUE_FULL,
    REASON_REJECTED,
)
from service.api.schemas import AssessResponse, FrameAssessment, ModelRef, Timings, prediction_out
from service.api.state import ServiceState
from service.frames import FrameError
from service.inference.batcher import QueueFullError, QueueStoppedError
from service.inference.model import LoadedModel
from service.inference.scoring import ScoringOptions

log = logging.getLogger(__name__)

MULTIPART = "multipart/form-data"
FILE_FIELD = "file"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", BODY_TOO_LARGE.format(limit=limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", BODY_TOO_LARGE.format(limit=limit))
        chunks.append(chunk)
    return b"".join(chunks)


def media_type_of(content_type: str | None) -> str | None:
    return None if not content_type else content_type.split(";", 1)[0].strip().lower() or None


async def file_part(request: Request, body: bytes) -> tuple[bytes, str | None]:
    """The bytes and declared type of a multipart upload's file part (field `file`, else the first file)."""

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "malformed_multipart", MALFORMED_MULTIPART.format(reason=exc)) from exc
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        named = form.get(FILE_FIELD)
        upload = named if isinstance(named, UploadFile) else (files[0] if files else None)
        if upload is None:
            raise ApiError(400, "no_file_part", NO_FILE_PART)
        return await upload.read(), media_type_of(upload.content_type)
    finally:
        await form.close()


class Assessor:
    """Scores an upload with the served model and records the outcome in the metrics."""

    def __init__(self, service: ServiceState) -> None:
        self.service = service
        self.metrics = service.metrics

    async def handle(
        self, request: Request, model: LoadedModel, *, width: int | None, height: int | None, mask: bool
    ) -> AssessResponse:
        """Read the upload (raw body or multipart file part) and assess it."""
        received = time.perf_counter()
        try:
            body = await read_body(request, self.service.settings.max_body_bytes)
            media_type = media_type_of(request.headers.get("content-type"))
            if media_type == MULTIPART:
                body, media_type = await file_part(request, body)
        except ApiError:
            self.metrics.scoring(model.name, model.number, ENDPOINT_ASSESS).failure(REASON_REJECTED).inc()
            raise
        return await self.assess(
            model, body, media_type, width=width, height=height, mask=mask, received=received
        )

    async def assess(
        self,
        model: LoadedModel,
        data: bytes,
        media_type: str | None,
        *,
        width: int | None,
        height: int | None,
        mask: bool,
        received: float,
    ) -> AssessResponse:
        scoring = self.metrics.scoring(model.name, model.number, ENDPOINT_ASSESS)
        try:
            batch = await self.service.scorer.score(
                model, data, media_type, ScoringOptions(mask_png=mask), width=width, height=height
            )
        except FrameError as exc:
            scoring.failure(REASON_REJECTED).inc()
            raise from_frame_error(exc) from exc
        except QueueFullError as exc:
            scoring.failure(REASON_QUEUE_FULL).inc()
            retry = str(self.service.settings.retry_after_s)
            raise ApiError(429, "queue_full", str(exc), {"Retry-After": retry}) from exc
        except QueueStoppedError as exc:
            scoring.failure(REASON_ERROR).inc()
            raise ApiError(503, "shutting_down", str(exc)) from exc
        except Exception as exc:
            # A fault of ours: logged in full; the client gets a 500 with a plain message.
            log.exception("scoring an upload failed")
            scoring.failure(REASON_ERROR).inc()
            raise ApiError(500, "internal_error", INTERNAL_ERROR) from exc
        total_s = time.perf_counter() - received
        self.service.record_scored(scoring, batch, total_s)
        count = len(batch.frames)
        timing = batch.timing
        per_frame = Timings(
            decode_ms=_ms(timing.prepare_s / max(count, 1)),
            queue_ms=_ms(timing.queue_s),
            inference_ms=_ms(timing.inference_s),
            total_ms=_ms(total_s),
        )
        return AssessResponse(
            model=ModelRef.of(model),
            target_rejection=model.target_rejection,
            threshold=model.threshold,
            frame_count=count,
            frames=[
                FrameAssessment(
                    index=frame.index,
                    amenability_score=round(frame.score, 6),
                    amenable=frame.amenable,
                    threshold=frame.threshold,
                    prediction=prediction_out(frame.prediction),
                    timings=per_frame,
                )
                for frame in batch.frames
            ],
            timings=Timings(
                decode_ms=_ms(timing.prepare_s),
                queue_ms=_ms(timing.queue_s),
                inference_ms=_ms(timing.inference_s),
                total_ms=_ms(total_s),
            ),
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
