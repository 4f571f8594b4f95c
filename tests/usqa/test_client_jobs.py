"""usqa.client's control routes against a real deployment (redis-server, an API process, a worker): upload,
retrain, job and follow_job, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.jobs.conftest import OVERRIDES
from tests.support.topology import Topology, free_port
from usqa.client import AsyncClient, Client, Job, UsqaError
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
