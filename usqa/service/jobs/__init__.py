"""Retraining jobs: the job spec, the Celery wiring shared by the API and the workers, and job records.

The API enqueues `usqa.retrain` by name (it never imports torch); the task itself lives in `usqa.trainer.jobs`.
"""

from usqa.service.jobs.queue import (
    RETRAIN_QUEUE,
    RETRAIN_TASK,
    JobClient,
    JobStatus,
    QueueUnavailable,
    configure,
)
from usqa.service.jobs.records import JobRecord, JobRecords, UnknownJob
from usqa.service.jobs.spec import JobSpec, SpecError, check_spec, resolve_config

__all__ = [
    "RETRAIN_QUEUE",
    "RETRAIN_TASK",
    "JobClient",
    "JobRecord",
    "JobRecords",
    "JobSpec",
    "JobStatus",
    "QueueUnavailable",
    "SpecError",
    "UnknownJob",
    "check_spec",
    "configure",
    "resolve_config",
]
