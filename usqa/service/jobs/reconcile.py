"""Job records reconciled with the broker: a job the broker lost is queued again, then failed, never PENDING
forever.

Celery calls every task id it knows nothing about PENDING, so a job whose message vanished (Redis restarted
without persistence, a flushed database) would wait forever. On `GET /jobs/{id}` a PENDING job older than
`LOST_GRACE_S` is looked for in the broker (the queue's lists and kombu's unacked hash); a job that is in
neither is queued again under the same id (jobs are idempotent by id: a published version is found, not
published twice), at most `job_max_retries` times, and then reported FAILURE. The status says which, in
`note` or `error`. Brokers other than Redis are not inspected (their jobs are left as they are).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from usqa.service.jobs.records import JobRecord, JobRecords

log = logging.getLogger(__name__)

# A job just sent may not be visible in every place yet; younger jobs are never reconciled.
LOST_GRACE_S = 10.0
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivered but unacknowledged messages
CONNECT_TIMEOUT_S = 2.0

MSG_REQUEUED = (
    "the job queue had lost this job (a broker restart without persistence); it was queued again "
    "({count} of {limit})"
)
MSG_LOST = (
    "the job queue lost this job {count} times (a broker restart without persistence) and it never ran; "
    "submit it again"
)


class Requeue(Protocol):
    def __call__(self, record: JobRecord) -> None: ...


def broker_holds(broker_url: str | None, queue: str, job_id: str) -> bool | None:
    """Whether the broker still holds the job's message (queued or delivered); None when it cannot tell."""
    if broker_url is None or urlsplit(broker_url).scheme not in ("redis", "rediss", "unix"):
        return None
    import redis

    client = redis.Redis.from_url(
        broker_url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    needle = job_id.encode()
    try:
        # The queue's list, and its priority lists (kombu names them queue + '\x06\x16' + priority).
        for key in [queue.encode(), *client.scan_iter(match=f"{queue}\x06\x16*")]:
            if any(needle in message for message in client.lrange(key, 0, -1)):
                return True
        return any(needle in message for message in client.hvals(UNACKED_KEY))
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def reconcile_pending(
    record: JobRecord,
    records: JobRecords,
    *,
    broker_url: str | None,
    queue: str,
    max_requeues: int,
    requeue: Requeue,
) -> tuple[str | None, str | None]:
    """(note, error) for a PENDING job: a note when it was queued again, an error once it is given up on."""
    if record.created and _age_s(record.created) < LOST_GRACE_S:
        return None, None
    count = records.requeues(record.id)
    if broker_holds(broker_url, queue, record.id) is not False:
        return (MSG_REQUEUED.format(count=count, limit=max_requeues) if count else None), None
    if count >= max_requeues:
        return None, MSG_LOST.format(count=count + 1)
    requeue(record)
    count = records.count_requeue(record.id)
    log.warning("job %s was lost by the broker; queued it again (%d of %d)", record.id, count, max_requeues)
    return MSG_REQUEUED.format(count=count, limit=max_requeues), None


def _age_s(created: str) -> float:
    try:
        stamp = datetime.fromisoformat(created)
    except ValueError:
        return float("inf")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (datetime.now(UTC) - stamp).total_seconds()
