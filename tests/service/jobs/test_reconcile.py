"""A job the broker lost is not PENDING forever (issue 28): on GET it is queued again, then failed, and the
status says which. Against the real Redis on 127.0.0.1 (its own database, flushed to play the lost broker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from usqa.service.jobs import JobSpec
from usqa.service.jobs.queue import RETRAIN_QUEUE, JobClient
from usqa.service.jobs.reconcile import MSG_LOST, MSG_REQUEUED, broker_holds
from usqa.service.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of its own: the test flushes it
SPEC = JobSpec(dataset="ds-0123456789abcdef", task="classify")


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        # CI and make install provide redis-server: a missing one is a broken setup, not a reason to pass.
        pytest.fail("no Redis on 127.0.0.1:6379 (make install installs redis-server)")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def jobs(tmp_path: Path, broker: redis.Redis) -> Iterator[JobClient]:
    client = JobClient(Settings(redis_url=REDIS_URL, jobs_root=tmp_path / "jobs", job_max_retries=2))
    yield client
    client.close()


def _age(client: JobClient, job_id: str, seconds: float) -> None:
    """Make the record look `seconds` old (reconciling leaves jobs younger than its grace alone)."""
    path = client.records.root / f"{job_id}.json"
    record = json.loads(path.read_text())
    record["created"] = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds")
    path.write_text(json.dumps(record))


def test_a_queued_job_is_left_alone(jobs: JobClient) -> None:
    status, created = jobs.submit(SPEC)
    assert created and status.state == "PENDING"
    _age(jobs, status.id, 60)
    assert broker_holds(REDIS_URL, RETRAIN_QUEUE, status.id) is True
    again = jobs.status(status.id)
    assert (again.state, again.note, again.error) == ("PENDING", None, None)


def test_a_lost_job_is_queued_again_then_failed(jobs: JobClient, broker: redis.Redis) -> None:
    status, _ = jobs.submit(SPEC)
    _age(jobs, status.id, 60)
    for attempt in (1, 2):
        broker.flushdb()  # Redis restarted without persistence: the message is gone
        assert broker_holds(REDIS_URL, RETRAIN_QUEUE, status.id) is False
        requeued = jobs.status(status.id)
        assert requeued.state == "PENDING"
        assert requeued.note == MSG_REQUEUED.format(count=attempt, limit=2)
        assert broker_holds(REDIS_URL, RETRAIN_QUEUE, status.id) is True
    broker.flushdb()
    lost = jobs.status(status.id)
    assert (lost.state, lost.error) == ("FAILURE", MSG_LOST.format(count=3))
    assert lost.finished


def test_a_young_job_is_not_reconciled(jobs: JobClient, broker: redis.Redis) -> None:
    status, _ = jobs.submit(SPEC)
    broker.flushdb()
    again = jobs.status(status.id)
    assert (again.state, again.note) == ("PENDING", None)


def test_other_brokers_are_not_inspected() -> None:
    assert broker_holds("filesystem:///tmp/broker", RETRAIN_QUEUE, "0" * 32) is None
    assert broker_holds(None, RETRAIN_QUEUE, "0" * 32) is None
