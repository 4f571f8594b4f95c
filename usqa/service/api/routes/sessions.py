"""Scan session reports: recent sessions, one session's report, its auto-captured frames as PNG, deletion.

They hold patient images, so they need the bearer token whenever one is configured (scoring may be open).
They expire after USQA_SESSION_RETENTION_S (usqa/service/live/session_store.py; docs/privacy.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response

from usqa.service.api.deps import RecordsAuth, SessionStoreDep
from usqa.service.api.errors import CAPTURE_NOT_FOUND, SESSION_NOT_FOUND, ApiError
from usqa.service.api.schemas import ErrorResponse
from usqa.service.api.session_schemas import SessionList, SessionReport
from usqa.service.frames.errors import cut
from usqa.service.live.session_store import SessionRecord, SessionStore

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[RecordsAuth])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorResponse,
        "description": "A token is configured and the request's is missing or wrong",
    },
    404: {
        "model": ErrorResponse,
        "description": "No such session (or it was evicted, expired or deleted), or no such capture",
    },
}
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "The captured frame as PNG"}
}


def _record(store: SessionStore, session_id: str) -> SessionRecord:
    record = store.get(session_id)
    if record is None:
        raise ApiError(404, "session_not_found", SESSION_NOT_FOUND.format(session=cut(session_id)))
    return record


@router.get("", response_model=SessionList, responses=ERRORS)
async def recent(store: SessionStoreDep) -> SessionList:
    """Open and recent scan sessions, newest first."""
    return SessionList.model_validate({"sessions": [r.listing() for r in store.recent()]})


@router.get("/{session_id}", response_model=SessionReport, responses=ERRORS)
async def report(session_id: str, store: SessionStoreDep) -> SessionReport:
    """One session's report: frames, time in each verdict, captures, model versions, DICOM UIDs, in words."""
    return SessionReport.model_validate(_record(store, session_id).report())


@router.get(
    "/{session_id}/captures/{rank}.png",
    response_class=Response,
    responses={**PNG_RESPONSE, **ERRORS},
)
async def capture(session_id: str, rank: int, store: SessionStoreDep) -> Response:
    """The session's `rank`-th best captured frame (0 is the best), as PNG."""
    record = _record(store, session_id)
    kept = record.capture(rank)
    if kept is None:
        count = len(record.keeper.captures)
        raise ApiError(
            404,
            "capture_not_found",
            CAPTURE_NOT_FOUND.format(rank=rank, session=cut(session_id), count=count),
        )
    png = await asyncio.to_thread(kept.png)
    return Response(png, media_type="image/png")


@router.delete("/{session_id}", status_code=204, response_class=Response, responses=ERRORS)
async def delete(session_id: str, store: SessionStoreDep) -> Response:
    """Delete a session now: its report and captures, in memory and in the sessions folder."""
    if not store.delete(session_id):
        raise ApiError(404, "session_not_found", SESSION_NOT_FOUND.format(session=cut(session_id)))
    return Response(status_code=204)
