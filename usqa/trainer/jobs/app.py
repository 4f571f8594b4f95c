"""The workers' Celery app (`celery -A usqa.trainer.jobs.app`) and its one task, `usqa.retrain`.

Failures are sorted: a spec or data set that cannot be trained fails at once (no retry); a job whose folder
another delivery still holds, or whose Redis connection dropped, is retried with exponential backoff; a
cancelled job ends REVOKED. Late acks with `reject_on_worker_lost` (usqa.service.jobs.queue) bring a job whose
worker was killed back to the queue; `run_job` then resumes it from its checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.signals import worker_ready

from usqa.service.jobs.queue import PROGRESS_STATE, RETRAIN_TASK, make_app
from usqa.service.jobs.spec import JobSpec
from usqa.service.settings import get_settings
from usqa.trainer.engine.device import resolve_device
from usqa.trainer.jobs.retrain import JobBusy, JobCancelled, run_job

log = logging.getLogger(__name__)

settings = get_settings()
app = make_app(settings)
TRANSIENT_ERRORS = (JobBusy, redis.ConnectionError, redis.TimeoutError)
MSG_TIMED_OUT = (
    "the job ran past its time limit (USQA_JOB_SOFT_TIME_LIMIT_S = {limit} s) and was stopped; nothing was "
    "published. Give it a smaller budget (overrides) or raise the limits"
)


class JobTimedOut(RuntimeError):
    """The soft time limit stopped the job (a clear failure instead of Celery's bare exception)."""


def training_device(requested: str) -> str:
    """`USQA_TRAIN_DEVICE` by `resolve_device`: "auto" is CUDA when there, else CPU; an absent CUDA, an error."""
    return str(resolve_device(requested))


@worker_ready.connect
def _announce_device(**_: Any) -> None:
    log.info("usqa worker ready; training device: %s", training_device(settings.train_device))


@app.task(
    bind=True,
    name=RETRAIN_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=settings.job_retry_backoff_s,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.job_max_retries,
)
def retrain(self: Task, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    job = JobSpec.model_validate(spec)
    device = training_device(settings.train_device)
    if "device" not in job.overrides:
        job = job.model_copy(update={"overrides": {**job.overrides, "device": device}})

    def report(event: dict[str, Any]) -> None:
        try:
            self.update_state(state=PROGRESS_STATE, meta={**event, "device": device})
        except redis.RedisError as exc:  # progress is best effort; the job goes on
            log.warning("job %s: progress not stored (%s)", job_id, exc)

    try:
        return run_job(job_id, job, settings, report)
    except SoftTimeLimitExceeded as exc:
        raise JobTimedOut(MSG_TIMED_OUT.format(limit=settings.job_soft_time_limit_s)) from exc
    except JobCancelled as exc:
        self.backend.mark_as_revoked(job_id, reason=str(exc), request=self.request)
        log.info("job %s %s; its work folder was removed", job_id, exc)
        raise Ignore() from exc
