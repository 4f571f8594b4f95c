"""usqa.client's control routes against a real deployment (redis-server, an API process, a worker): upload,
retrain, job and follow_job, sync and async; and the core's event parser and retry policy without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.jobs.conftest import OVERRIDES
from tests.support.topology import Topology, free_port
from usqa.client import AsyncClient, Client, Job, UsqaError
from usqa.client.core import EventParser, RetryPolicy, job_of_event, retrain_request
from usqa.service.simulator import write_dataset

# The jobs run on a real worker, which trains: torch.
pytestmark = pytest.mark.torch

FRAMES = 160


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    topo = Topology(tmp_path_factory.mktemp("client-jobs"), redis_port=free_port(), model_name="usqa-client")
    try:
        topo.start_redis()
        topo.start_api()
        topo.start_worker()
        write_dataset(
            topo.root / "set", frames=FRAMES, subjects=8, seed=5, size=64, preset="transrectal_prostate"
        )
        yield topo
    finally:
        topo.stop()


def _spec(dataset: str) -> dict[str, object]:
    # A debug run cannot beat the trivial predictor: forced, since these tests are about the client.
    return {"dataset": dataset, "task": "classify", "config": "debug", "overrides": OVERRIDES, "force": True}


@pytest.mark.slow
def test_upload_retrain_and_follow_a_job_to_its_end(deployment: Topology) -> None:
    with Client(deployment.apis[0][1], token="topology-test-token") as usqa:
        dataset = usqa.upload(deployment.root / "set")  # a folder is zipped by the client
        assert dataset.created and dataset.frames == FRAMES and sum(dataset.splits.values()) == FRAMES
        again = usqa.upload(deployment.root / "set")
        assert again.id == dataset.id and not again.created
        with pytest.raises(UsqaError) as refused:
            usqa.upload(b"not an archive", "set.zip")
        assert refused.value.status in (400, 415) and refused.value.detail

        queued = usqa.retrain(_spec(dataset.id), idempotency_key="client-test")
        assert not queued.finished
        # The same key is the same job (what makes a retried POST safe).
        assert usqa.retrain(_spec(dataset.id), idempotency_key="client-test").id == queued.id
        statuses = list(usqa.follow_job(queued.id, timeout_s=120))
        assert statuses[-1].state == "SUCCESS", statuses[-1].error
        assert all(not s.finished for s in statuses[:-1]) and statuses[-1].report is not None
        assert statuses[-1].report["version"] == 1
        assert any(s.progress.get("episode") for s in statuses), "no episode progress was streamed"
        assert usqa.job(queued.id).state == "SUCCESS"
        with pytest.raises(UsqaError) as unknown:
            usqa.job("0" * 32)
        assert unknown.value.status == 404


@pytest.mark.slow
def test_the_async_client_speaks_the_same_routes(deployment: Topology) -> None:
    async def run() -> list[Job]:
        async with AsyncClient(deployment.apis[0][1], token="topology-test-token") as usqa:
            dataset = await usqa.upload(deployment.root / "set")
            done = [job async for job in usqa.follow_job((await usqa.retrain(_spec(dataset.id))).id)]
            assert (await usqa.job(done[-1].id)).state == done[-1].state
            return done

    statuses = asyncio.run(run())
    assert statuses[-1].state == "SUCCESS" and statuses[-1].report is not None
    assert statuses[-1].report["version"] == 2


def test_the_event_parser_reads_server_sent_events() -> None:
    lines = [
        ": keep-alive",
        "",
        "event: status",
        'data: {"id": "ab", "state": "PROGRESS",',
        'data: "progress": {}}',
    ]
    lines += ["", "event: end", 'data: {"state": "SUCCESS"}', ""]
    parser = EventParser()
    events = [e for line in lines if (e := parser.feed(line)) is not None]
    assert [e.event for e in events] == ["status", "end"]
    job = job_of_event(events[0])
    assert job is not None and job.state == "PROGRESS" and not job.finished
    assert job_of_event(events[1]) is None
    parser.feed("event: error")
    parser.feed('data: {"code": "unavailable", "detail": "the job queue is unreachable"}')
    error = parser.feed("")
    assert error is not None
    with pytest.raises(UsqaError, match="unreachable"):
        job_of_event(error)


def test_the_retry_policy_and_the_idempotency_key() -> None:
    policy = RetryPolicy(retries=2, backoff_s=0.1)
    busy = httpx.Response(503, headers={"Retry-After": "3"})
    assert policy.after_response(0, busy) == 3.0 and policy.after_response(2, busy) is None
    assert policy.after_response(0, httpx.Response(429)) == 0.1
    assert policy.after_response(1, httpx.Response(503)) == pytest.approx(0.2)
    assert policy.after_response(0, httpx.Response(422)) is None
    assert (
        policy.after_scan_refusal(0, 1013, None) == 0.1 and policy.after_scan_refusal(0, 1008, None) is None
    )
    assert policy.after_scan_refusal(0, None, 403) is None and policy.after_scan_refusal(1, None, None) == 0.2
    # One key per call (a retry of that call resends it), unless the caller gives one.
    first, second = retrain_request({"dataset": "x"}), retrain_request({"dataset": "x"})
    assert first.options["headers"]["Idempotency-Key"] != second.options["headers"]["Idempotency-Key"]
    assert retrain_request({}, "mine").options["headers"] == {"Idempotency-Key": "mine"}


def test_upload_requests_take_a_folder_an_archive_or_bytes(tmp_path: Path) -> None:
    from usqa.client.archives import zip_folder
    from usqa.client.core import upload_request

    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "labels.csv").write_text("frame,label\n")
    archive = zip_folder(tmp_path / "set", tmp_path / "set.zip")
    assert upload_request(tmp_path / "set").options["files"]["file"][0] == "set.zip"
    assert upload_request(archive).options["files"]["file"] == ("set.zip", archive.read_bytes())
    assert upload_request(b"x", "a.tar").options["files"]["file"] == ("a.tar", b"x")
