"""Scan session reports: recent sessions, one session's report, its auto-captured frames as PNG, the scan as
DICOM objects (a zip: the captures and the SR that usqa files in the PACS; docs/pacs.md), deletion.

They hold patient images, so they need the bearer token whenever one is configured (scoring may be open).
They expire after USQA_SESSION_RETENTION_S (usqa/service/live/session_store.py; docs/privacy.md), and every
access that reached a route is a line of the audit log (usqa/service/api/audit.py), found or not.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any

from fastapi import APIRouter, Request, Response

from usqa.service.api.audit import Action, audit
from usqa.service.api.deps import RecordsAuth, ServiceDep, SessionStoreDep
from usqa.service.api.errors import CAPTURE_NOT_FOUND, NO_MODEL, SESSION_NOT_FOUND, ApiError
from usqa.service.api.schemas import ErrorResponse
from usqa.service.api.session_schemas import SessionList, SessionReport
from usqa.service.frames.errors import cut
from usqa.service.live.session_store import SessionRecord, SessionStore
from usqa.service.record.filing import scan_files

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


def _session_not_found(request: Request, action: Action, session_id: str, capture: int | None) -> ApiError:
    audit(request, action, "not_found", session=session_id, capture=capture)
    return ApiError(404, "session_not_found", SESSION_NOT_FOUND.format(session=cut(session_id)))


def _record(
    request: Request, store: SessionStore, action: Action, session_id: str, capture: int | None = None
) -> SessionRecord:
    record = store.get(session_id)
    if record is None:
        raise _session_not_found(request, action, session_id, capture)
    return record


@router.get("", response_model=SessionList, responses=ERRORS)
async def recent(request: Request, store: SessionStoreDep) -> SessionList:
    """Open and recent scan sessions, newest first."""
    listing = SessionList.model_validate({"sessions": [r.listing() for r in store.recent()]})
    audit(request, "list_sessions", "ok")
    return listing


@router.get("/{session_id}", response_model=SessionReport, responses=ERRORS)
async def report(session_id: str, request: Request, store: SessionStoreDep) -> SessionReport:
    """One session's report: frames, time in each verdict, captures, model versions, DICOM UIDs, in words."""
    answer = SessionReport.model_validate(_record(request, store, "read_report", session_id).report())
    audit(request, "read_report", "ok", session=session_id)
    return answer


@router.get(
    "/{session_id}/captures/{rank}.png",
    response_class=Response,
    responses={**PNG_RESPONSE, **ERRORS},
)
async def capture(session_id: str, rank: int, request: Request, store: SessionStoreDep) -> Response:
    """The session's `rank`-th best captured frame (0 is the best), as PNG."""
    record = _record(request, store, "read_capture", session_id, rank)
    kept = record.capture(rank)
    if kept is None:
        audit(request, "read_capture", "not_found", session=session_id, capture=rank)
        count = len(record.keeper.captures)
        raise ApiError(
            404,
            "capture_not_found",
            CAPTURE_NOT_FOUND.format(rank=rank, session=cut(session_id), count=count),
        )
    png = await asyncio.to_thread(kept.png)
    audit(request, "read_capture", "ok", session=session_id, capture=rank)
    return Response(png, media_type="image/png")


ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/zip": {}},
        "description": "capture-<rank>.dcm (Secondary Capture images, best first) and report.dcm (the SR)",
    },
    503: {"model": ErrorResponse, "description": "No model is served yet to name in the report"},
}


@router.get("/{session_id}/dicom", response_class=Response, responses={**ZIP_RESPONSE, **ERRORS})
async def dicom(session_id: str, request: Request, service: ServiceDep) -> Response:
    """The session as the DICOM objects usqa files in the PACS, in a zip (`usqa session export` unpacks it)."""
    record = _record(request, service.records, "export_dicom", session_id)
    holder = service.models.holders.get(record.model_name or "", service.holder)
    model = holder.current
    if model is None:
        raise ApiError(503, "no_model", NO_MODEL.format(reason="its exam's model is not loaded"))
    files = await asyncio.to_thread(scan_files, record, model)
    names = [*(f"capture-{k}.dcm" for k in range(len(files) - 1)), "report.dcm"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in zip(names, files, strict=True):
            archive.writestr(name, data)
    audit(request, "export_dicom", "ok", session=session_id)
    headers = {"Content-Disposition": f'attachment; filename="usqa-session-{session_id}.zip"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


@router.delete("/{session_id}", status_code=204, response_class=Response, responses=ERRORS)
async def delete(session_id: str, request: Request, service: ServiceDep) -> Response:
    """Delete a session now: its report and captures, in memory and in the sessions folder, and its objects
    still waiting for the PACS (those already delivered are the archive's to keep)."""
    discarded = 0 if service.outbox is None else await asyncio.to_thread(service.outbox.discard, session_id)
    if not service.records.delete(session_id) and not discarded:
        raise _session_not_found(request, "delete_session", session_id, None)
    audit(request, "delete_session", "ok", session=session_id)
    return Response(status_code=204)
