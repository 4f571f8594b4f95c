"""Job records: one JSON file per job in `USQA_JOBS_ROOT`, shared by API replicas and workers.

The broker carries the work and the result backend its state; the record keeps what they do not: the spec as
submitted, when, and a cancellation mark that a worker checks between episodes (it works with any broker, also
for a job still waiting in the queue, where revoking would need a broadcast).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from usqa.service.jobs.spec import JOB_ID_PATTERN, JobSpec, check_id

RECORD_SUFFIX = ".json"
CANCEL_SUFFIX = ".cancel"
# How often the job was queued again after the broker lost it (usqa/service/jobs/reconcile.py).
REQUEUED_SUFFIX = ".requeued"
# Client retries of one POST /retrain (same Idempotency-Key) map to one job id.
IDEMPOTENCY_NAMESPACE = uuid.UUID("8b5f0c4e-33a1-4f55-9d0e-6b1f3f1c2a77")


class UnknownJob(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id


@dataclass(frozen=True)
class JobRecord:
    id: str
    spec: dict[str, Any]
    created: str

    @property
    def job_spec(self) -> JobSpec:
        return JobSpec.model_validate(self.spec)


def new_job_id(idempotency_key: str | None = None) -> str:
    if idempotency_key:
        return uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key).hex
    return uuid.uuid4().hex


class JobRecords:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, job_id: str, suffix: str) -> Path:
        check_id(job_id, JOB_ID_PATTERN, "job")
        return self.root / f"{job_id}{suffix}"

    def create(self, job_id: str, spec: JobSpec) -> tuple[JobRecord, bool]:
        """Write the record unless it exists; (record, created). Atomic: a reader never sees half a file."""
        path = self._path(job_id, RECORD_SUFFIX)
        if path.exists():
            return self.get(job_id), False
        self.root.mkdir(parents=True, exist_ok=True)
        record = JobRecord(
            id=job_id,
            spec=spec.model_dump(mode="json"),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        tmp = path.with_name(f".tmp-{job_id}-{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(asdict(record), sort_keys=True))
        try:
            # link() fails if another replica created the same id meanwhile: first writer wins.
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
        finally:
            tmp.unlink(missing_ok=True)
        return (record if created else self.get(job_id)), created

    def get(self, job_id: str) -> JobRecord:
        path = self._path(job_id, RECORD_SUFFIX)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UnknownJob(job_id) from None
        return JobRecord(id=data["id"], spec=data["spec"], created=data["created"])

    def list(self, limit: int = 100) -> list[JobRecord]:
        """The newest `limit` records, newest first."""
        if not self.root.is_dir():
            return []
        paths = sorted(
            (p for p in self.root.glob(f"*{RECORD_SUFFIX}") if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        records = []
        for path in paths[:limit]:
            try:
                records.append(self.get(path.stem))
            except (UnknownJob, ValueError):
                continue
        return records

    def delete(self, job_id: str) -> None:
        """Forget a job that was never queued (the broker refused it)."""
        self._path(job_id, RECORD_SUFFIX).unlink(missing_ok=True)

    def request_cancel(self, job_id: str) -> None:
        self.get(job_id)
        self._path(job_id, CANCEL_SUFFIX).touch()

    def cancel_requested(self, job_id: str) -> bool:
        return self._path(job_id, CANCEL_SUFFIX).exists()

    def requeues(self, job_id: str) -> int:
        try:
            return int(self._path(job_id, REQUEUED_SUFFIX).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def count_requeue(self, job_id: str) -> int:
        count = self.requeues(job_id) + 1
        self._path(job_id, REQUEUED_SUFFIX).write_text(str(count))
        return count
