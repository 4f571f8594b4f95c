"""Celery wiring shared by the API (which enqueues by name) and the workers (which run `usqa.trainer.jobs`).

Reliability settings as the field uses them: late acks and `reject_on_worker_lost` (a job whose worker dies is
redelivered, not lost), prefetch 1 (a long job never holds a second one hostage), soft and hard time limits,
a visibility timeout longer than the hard limit (so a running job is never handed to a second worker), and
a fresh worker process per job (torch's memory goes back to the system).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from celery import Celery
from celery.result import AsyncResult
from pydantic import BaseModel

from usqa.service.jobs.reconcile import reconcile_pending
from usqa.service.jobs.records import JobRecord, JobRecords, new_job_id
from usqa.service.jobs.spec import JobSpec
from usqa.service.settings import Settings

log = logging.getLogger(__name__)

RETRAIN_TASK = "usqa.retrain"
RETRAIN_QUEUE = "retrain"
PROGRESS_STATE = "PROGRESS"
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
CONNECT_TIMEOUT_S = 2.0
RESULTS_KEPT = timedelta(days=7)
FILESYSTEM_SCHEME = "filesystem"
SOFT_SHUTDOWN_S = 20.0

MSG_NOT_CONFIGURED = (
    "retraining is not configured on this service: set USQA_REDIS_URL (or USQA_BROKER_URL and "
    "USQA_RESULT_BACKEND)"
)
MSG_KEY_REUSED = "this Idempotency-Key was used for job {job_id} with a different spec; use a new key"
MSG_UNREACHABLE = "the job queue at {url} is unreachable ({reason}); scoring goes on, retry later"


class IdempotencyConflict(ValueError):
    """An Idempotency-Key sent again with a different spec (the API answers 409)."""


class QueueUnavailable(RuntimeError):
    """The broker or result backend cannot be reached (the API answers 503)."""


def redact(url: str) -> str:
    """A URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _filesystem_options(url: str) -> dict[str, Any]:
    # `filesystem:///path`: kombu's file transport (the embedded broker `usqa demo` uses without Redis).
    root = Path(urlsplit(url).path or "runs/broker")
    for sub in ("queue", "processed", "control"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),  # kombu's default is ./control, wherever the process runs
        "store_processed": False,
    }


def configure(app: Celery, settings: Settings) -> Celery:
    """Apply usqa's broker, backend and reliability settings to a Celery app."""
    broker = settings.broker
    if broker is None:
        raise QueueUnavailable(MSG_NOT_CONFIGURED)
    visibility = settings.job_visibility_timeout_s
    if urlsplit(broker).scheme == FILESYSTEM_SCHEME:
        transport: dict[str, Any] = _filesystem_options(broker)
        broker = f"{FILESYSTEM_SCHEME}://"
    else:
        # Unacknowledged jobs of a dead worker are restored after `visibility`; check for them every
        # `unacked_restore_interval` seconds (kombu's default scans only every 100 s).
        transport = {
            "visibility_timeout": visibility,
            "unacked_restore_interval": min(10, max(1, visibility // 4)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
        }
    app.conf.update(
        broker_url=broker,
        result_backend=settings.backend,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": visibility},
        redis_socket_connect_timeout=CONNECT_TIMEOUT_S,
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_time_limit_s,
        task_track_started=True,
        result_extended=True,
        result_expires=RESULTS_KEPT,
        task_default_queue=RETRAIN_QUEUE,
        task_routes={RETRAIN_TASK: {"queue": RETRAIN_QUEUE}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        # On SIGTERM (a deploy, `docker compose stop`) the running job gets this long to finish; then the
        # worker shuts down cold and hands the job back to the queue at once instead of after the visibility
        # timeout. Keep the container's stop grace period longer than this.
        worker_soft_shutdown_timeout=SOFT_SHUTDOWN_S,
    )
    return app


def make_app(settings: Settings) -> Celery:
    return configure(Celery("usqa", set_as_current=False), settings)


def check_reachable(url: str | None) -> None:
    """Raise `QueueUnavailable` unless the broker/backend at `url` answers within the connect timeout."""
    if url is None:
        raise QueueUnavailable(MSG_NOT_CONFIGURED)
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        import redis

        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            raise QueueUnavailable(
                MSG_UNREACHABLE.format(url=redact(url), reason=type(exc).__name__)
            ) from exc
        finally:
            client.close()


JobState = Literal["PENDING", "RECEIVED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]


class JobProgress(BaseModel):
    stage: str | None = None
    episode: int | None = None
    episodes: int | None = None
    metrics: dict[str, float] = {}
    eta_s: float | None = None
    message: str | None = None


class JobStatus(BaseModel):
    """`GET /jobs/{id}`: Celery's state name, the latest progress, and the final report or error."""

    id: str
    state: str
    spec: dict[str, Any]
    created: str
    cancel_requested: bool
    progress: JobProgress | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    # Set when the broker had lost the job and it was queued again (usqa/service/jobs/reconcile.py).
    note: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


class JobClient:
    """Submit, follow and cancel retraining jobs (the API's side; never imports torch)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_app(settings)
        self.records = JobRecords(settings.jobs_root)

    def check(self) -> None:
        check_reachable(self.settings.broker)
        if self.settings.backend != self.settings.broker:
            check_reachable(self.settings.backend)

    def submit(self, spec: JobSpec, idempotency_key: str | None = None) -> tuple[JobStatus, bool]:
        """Record and enqueue a job; (status, created). The same idempotency key gives the same job."""
        self.check()
        job_id = new_job_id(idempotency_key)
        record, created = self.records.create(job_id, spec)
        if not created and record.spec != spec.model_dump(mode="json"):
            raise IdempotencyConflict(MSG_KEY_REUSED.format(job_id=job_id))
        if created:
            try:
                self._send(record)
            except Exception as exc:  # kombu's errors vary by transport; none may leave a record behind
                self.records.delete(job_id)
                raise QueueUnavailable(
                    MSG_UNREACHABLE.format(url=redact(self.settings.broker or ""), reason=type(exc).__name__)
                ) from exc
            log.info("queued job %s: %s on %s (%s)", job_id, spec.task, spec.dataset, spec.config)
        return self.status(job_id, record), created

    def _send(self, record: JobRecord) -> None:
        self.app.send_task(
            RETRAIN_TASK, args=(record.id, record.spec), task_id=record.id, queue=RETRAIN_QUEUE, retry=False
        )

    def status(self, job_id: str, record: JobRecord | None = None) -> JobStatus:
        record = record or self.records.get(job_id)
        result = AsyncResult(job_id, app=self.app)
        state, info = result.state, result.info
        note = None
        if state == "PENDING":  # or unknown to the broker: a job it lost is queued again, then failed
            note, lost = reconcile_pending(
                record,
                self.records,
                broker_url=self.settings.broker,
                queue=RETRAIN_QUEUE,
                max_requeues=self.settings.job_max_retries,
                requeue=self._send,
            )
            if lost is not None:
                state, info = "FAILURE", lost
        status = JobStatus(
            id=job_id,
            state=state,
            spec=record.spec,
            created=record.created,
            cancel_requested=self.records.cancel_requested(job_id),
            note=note,
        )
        if state == "SUCCESS" and isinstance(info, dict):
            status.report = info
        elif state == "FAILURE":
            status.error = f"{type(info).__name__}: {info}" if isinstance(info, BaseException) else str(info)
        elif state == "REVOKED":
            status.error = str(info or "cancelled")
        elif isinstance(info, dict):
            status.progress = JobProgress.model_validate(
                {k: v for k, v in info.items() if k in JobProgress.model_fields}
            )
        return status

    def cancel(self, job_id: str) -> JobStatus:
        """Mark the job cancelled: a queued job is dropped when a worker takes it, a running one stops at
        its next episode and removes its work folder. Finished jobs stay as they are."""
        status = self.status(job_id)
        if not status.finished:
            self.records.request_cancel(job_id)
            status.cancel_requested = True
        return status

    def list(self, limit: int = 50) -> list[JobStatus]:
        return [self.status(r.id, r) for r in self.records.list(limit)]

    def close(self) -> None:
        self.app.close()
