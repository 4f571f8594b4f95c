"""Scoring one upload for POST /assess (a frame, or every frame of a cine) and recording the outcome."""

from __future__ import annotations

import logging
import time

from fastapi import Request

from usqa.service.api.errors import INTERNAL_ERROR, ApiError, from_frame_error
from usqa.service.api.metrics import ENDPOINT_ASSESS, REASON_ERROR, REASON_QUEUE_FULL, REASON_REJECTED
from usqa.service.api.request_body import MULTIPART, file_part, media_type_of, read_body
from usqa.service.api.schemas import AssessResponse
from usqa.service.api.state import ServiceState
from usqa.service.frames import FrameError
from usqa.service.inference.batcher import QueueFullError, QueueStoppedError
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoringOptions

log = logging.getLogger(__name__)


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
        hints = await self.service.models.hints(model, batch.frames)
        total_s = time.perf_counter() - received
        self.service.record_scored(scoring, batch, total_s)
        return AssessResponse.of(batch, total_s, hints)
