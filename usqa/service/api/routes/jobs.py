"""Retraining jobs (bearer token): `POST /retrain`, `GET /jobs`, `GET /jobs/{id}`, its live progress as
server-sent events, and `DELETE /jobs/{id}`.

The API only enqueues `usqa.retrain` by name and reads its state; the work runs on Celery workers. If the
broker is down these answer 503 with a clear message while scoring goes on untouched.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from usqa.service.api.deps import ControlAuth, ServiceDep
from usqa.service.api.errors import ApiError
from usqa.service.api.routes.datasets import dataset_store
from usqa.service.api.schemas import ErrorResponse, JobList
from usqa.service.api.state import ServiceState
from usqa.service.datasets.uploads import UnknownDataset
from usqa.service.jobs import (
    JobClient,
    JobSpec,
    JobStatus,
    QueueUnavailable,
    SpecError,
    UnknownJob,
    check_spec,
)
from usqa.service.jobs.queue import MSG_NOT_CONFIGURED, IdempotencyConflict
from usqa.service.jobs.spec import JOB_ID_PATTERN

router = APIRouter(tags=["retraining"], dependencies=[ControlAuth])

# Each call to the broker or backend runs in a thread and is bounded, so a hung Redis never hangs a request.
QUEUE_CALL_TIMEOUT_S = 10.0
EVENT_POLL_S = 0.5
EVENT_KEEPALIVE_S = 15.0
MSG_TIMEOUT = "the job queue did not answer within {s:.0f} s; scoring goes on, retry later"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Bearer token missing or wrong"},
    403: {"model": ErrorResponse, "description": "No API token configured: control endpoints are disabled"},
    404: {"model": ErrorResponse, "description": "No such job or data set"},
    409: {"model": ErrorResponse, "description": "Idempotency-Key reused with a different spec"},
    422: {
        "model": ErrorResponse,
        "description": "A spec the trainer cannot use (bad override, unknown field)",
    },
    503: {"model": ErrorResponse, "description": "The job queue (Redis) is unreachable or not configured"},
}
T = TypeVar("T")


def _client(service: ServiceState) -> JobClient:
    if service.jobs is None:
        raise ApiError(503, "jobs_unavailable", MSG_NOT_CONFIGURED)
    return service.jobs


async def _call(fn: Callable[[], T]) -> T:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn), QUEUE_CALL_TIMEOUT_S)
    except QueueUnavailable as exc:
        raise ApiError(503, "jobs_unavailable", str(exc), {"Retry-After": "10"}) from exc
    except TimeoutError as exc:
        raise ApiError(503, "jobs_unavailable", MSG_TIMEOUT.format(s=QUEUE_CALL_TIMEOUT_S)) from exc
    except UnknownJob as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from exc


def _checked_status(client: JobClient, job_id: str) -> Callable[[], JobStatus]:
    def status() -> JobStatus:
        client.check()
        return client.status(job_id)

    return status


@router.post(
    "/retrain",
    status_code=202,
    response_model=JobStatus,
    responses={**ERRORS, 200: {"model": JobStatus, "description": "Same Idempotency-Key: the existing job"}},
    summary="Queue a retraining job on a data set uploaded with POST /datasets",
)
async def retrain(
    spec: JobSpec,
    response: Response,
    service: ServiceDep,
    idempotency_key: Annotated[
        str | None, Header(max_length=200, description="Retries with the same key return the same job")
    ] = None,
) -> JobStatus:
    client = _client(service)
    try:
        check_spec(spec)
        await asyncio.to_thread(dataset_store(service.settings).path, spec.dataset)
    except SpecError as exc:
        raise ApiError(422, "invalid_spec", str(exc)) from exc
    except UnknownDataset as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    status, created = await _call(lambda: client.submit(spec, idempotency_key))
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/jobs/{status.id}"
    return status


@router.get("/jobs", response_model=JobList, responses=ERRORS)
async def list_jobs(service: ServiceDep) -> JobList:
    client = _client(service)

    def listing() -> list[JobStatus]:
        client.check()
        return client.list()

    return JobList(jobs=await _call(listing))


@router.get("/jobs/{job_id}", response_model=JobStatus, responses=ERRORS)
async def get_job(job_id: str, service: ServiceDep) -> JobStatus:
    return await _call(_checked_status(_client(service), _valid_id(job_id)))


@router.delete("/jobs/{job_id}", response_model=JobStatus, responses=ERRORS)
async def cancel_job(job_id: str, service: ServiceDep) -> JobStatus:
    client = _client(service)
    job_id = _valid_id(job_id)

    def cancel() -> JobStatus:
        client.check()
        return client.cancel(job_id)

    return await _call(cancel)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "JobStatus per change"}},
    summary="Live progress: one server-sent event per change of the job's status, until it finishes",
)
async def job_events(job_id: str, request: Request, service: ServiceDep) -> StreamingResponse:
    client = _client(service)
    first = await _call(_checked_status(client, _valid_id(job_id)))

    async def events() -> AsyncIterator[str]:
        last: str | None = None
        quiet = 0.0
        status = first
        while True:
            payload = status.model_dump_json()
            if payload != last:
                yield f"event: status\ndata: {payload}\n\n"
                last, quiet = payload, 0.0
            if status.finished:
                yield f"event: end\ndata: {json.dumps({'state': status.state})}\n\n"
                return
            if quiet >= EVENT_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S
            if await request.is_disconnected():
                return
            try:
                status = await _call(_checked_status(client, job_id))
            except ApiError as exc:
                yield f"event: error\ndata: {json.dumps({'detail': exc.message, 'code': exc.code})}\n\n"
                return

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _valid_id(job_id: str) -> str:
    if not re.fullmatch(JOB_ID_PATTERN, job_id):
        raise ApiError(404, "not_found", f"no job {job_id!r} (job ids are 32 hex digits)")
    return job_id
