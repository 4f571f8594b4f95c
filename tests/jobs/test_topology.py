"""The deployment without Docker: real redis-server, two API processes, one worker; retraining through the API.

The tests run in order on one topology (module fixture): upload, a first job (no champion: promoted), a worse
challenger (refused by the gate), an equal one (promoted), an adaptation of the champion with 64 labels (gated),
a worker SIGKILLed mid-job, a cancellation, and Redis going away while scoring continues.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.jobs.conftest import OVERRIDES
from tests.support.topology import Topology, wait_for
from usqa.service.registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError

pytestmark = pytest.mark.slow

DATASETS: dict[str, str] = {}


def _spec(dataset: str, **changes: Any) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "task": "classify",
        "config": "debug",
        "overrides": dict(OVERRIDES),
        "force": True,  # a debug run cannot beat the trivial predictor; these tests are about the jobs
        **changes,
    }


def _png() -> bytes:
    frame = (np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def _assess(topology: Topology, i: int) -> int:
    with topology.client(i) as c:
        return c.post("/assess", content=_png(), headers={"Content-Type": "image/png"}).status_code


def test_upload_validates_and_is_shared_by_every_replica(
    topology: Topology, archives: dict[str, Path]
) -> None:
    first = topology.upload(archives["good"])
    assert first.status_code == 201, first.text
    again = topology.upload(archives["good"], i=1)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    inverted = topology.upload(archives["inverted"], i=1)
    assert inverted.status_code == 201, inverted.text
    DATASETS.update(good=first.json()["id"], inverted=inverted.json()["id"])
    body = first.json()
    assert body["frames"] == 240 and body["classes"] == [0, 1] and sum(body["splits"].values()) == 240
    with topology.client(1) as c:
        listed = {d["id"] for d in c.get("/datasets").json()["datasets"]}
    assert listed == set(DATASETS.values())


def test_retrain_needs_the_token(topology: Topology) -> None:
    with topology.client(0, token=None) as c:
        assert c.post("/retrain", json=_spec(DATASETS["good"])).status_code == 401
    with topology.client(0, token="wrong") as c:
        assert c.get("/jobs").status_code == 401
        assert c.get("/datasets").status_code == 401


def test_bad_specs_are_refused_before_queueing(topology: Topology) -> None:
    bad = [
        (_spec(DATASETS["good"], overrides={"episodes": "many"}), 422, "episodes"),
        (
            _spec(DATASETS["good"], overrides={"backbone_checkpoint": "/etc/passwd"}),
            422,
            "backbone_checkpoint",
        ),
        (_spec(DATASETS["good"], overrides={"no_such_setting": 1}), 422, "no_such_setting"),
        (_spec("ds-0000000000000000"), 404, "no data set"),
    ]
    for spec, status, words in bad:
        response = topology.retrain(spec)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]


def test_first_job_is_promoted_and_every_replica_swaps(topology: Topology) -> None:
    assert topology.served_version(0) is None  # nothing published yet: the APIs wait for a model
    response = topology.retrain(_spec(DATASETS["good"]), **{"Idempotency-Key": "first-job"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    # A client retrying the same POST gets the same job, not a second one.
    again = topology.retrain(_spec(DATASETS["good"]), **{"Idempotency-Key": "first-job"})
    assert again.status_code == 200 and again.json()["id"] == job_id
    reused = topology.retrain(_spec(DATASETS["inverted"]), **{"Idempotency-Key": "first-job"})
    assert reused.status_code == 409 and "different spec" in reused.json()["detail"]

    events = list(topology.events(job_id, i=1))
    states = [data["state"] for event, data in events if event == "status"]
    assert events[-1] == ("end", {"state": "SUCCESS"}), events[-3:]
    assert "PROGRESS" in states
    episodes = [
        d["progress"]["episode"]
        for e, d in events
        if e == "status" and d.get("progress") and d["progress"].get("episode")
    ]
    assert episodes, "no episode progress was streamed"

    report = events[-2][1]["report"]
    assert report["version"] == 1 and report["promoted"] is True
    topology.wait_served(1)
    assert _assess(topology, 0) == 200 and _assess(topology, 1) == 200


def test_worse_challenger_is_not_promoted(topology: Topology) -> None:
    response = topology.retrain(_spec(DATASETS["inverted"]))
    job = topology.wait_job(response.json()["id"])
    assert job["state"] == "SUCCESS", job
    report = job["report"]
    assert report["version"] == 2 and report["promoted"] is False
    gate = report["gate"]
    reference = next(s for s in gate["sets"] if s["dataset"] == DATASETS["good"])
    assert reference["passed"] is False and reference["challenger"] < reference["champion"] - gate["margin"]
    aliases = ModelRegistry(topology.registry).aliases(topology.model_name).current
    assert aliases[CHAMPION] == 1 and aliases[CHALLENGER] == 2
    time.sleep(3)  # longer than the registry poll: nobody swapped
    assert topology.served_version(0) == 1 and topology.served_version(1) == 1


def test_challenger_as_good_as_the_champion_is_promoted(topology: Topology) -> None:
    # Same data, same seed, same budget: the same weights, so the gate sees equal metrics and passes.
    job = topology.wait_job(topology.retrain(_spec(DATASETS["good"])).json()["id"])
    report = job["report"]
    assert job["state"] == "SUCCESS" and report["version"] == 3 and report["promoted"] is True, job
    assert all(s["passed"] for s in report["gate"]["sets"] if s["passed"] is not None)
    topology.wait_served(3)


def test_an_adaptation_with_64_labels_through_the_api_reaches_a_gate_decision(topology: Topology) -> None:
    registry = ModelRegistry(topology.registry)
    champion = registry.resolve(topology.model_name, CHAMPION)
    spec = {
        "dataset": DATASETS["good"],
        "task": "classify",
        "config": "debug",
        "adapt_from": f"{topology.model_name}@{CHAMPION}",
        "labels": 64,
        "adapt_mode": "finetune",
        "overrides": {"steps": 5, "seed": 1},
        "force": True,  # a 5-step adaptation need not beat the trivial predictor; the gate runs all the same
    }
    job = topology.wait_job(topology.retrain(spec).json()["id"])
    report = job["report"]
    assert job["state"] == "SUCCESS", (
        job.get("error"),
        job.get("report"),
        topology.workers[-1].log()[-3000:],
    )
    assert report["adaptation"]["source"] == f"{topology.model_name}:{champion}"
    assert report["adaptation"]["options"]["labels"] == 64
    gate = report["gate"]
    assert gate["champion_version"] == champion and gate["challenger_version"] == report["version"]
    assert report["promoted"] == gate["passed"] and isinstance(gate["passed"], bool)


def _all_versions_complete(
    registry: ModelRegistry, name: str, problems: list[str], stop: threading.Event
) -> None:
    while not stop.is_set():
        for version in registry.versions(name):
            try:
                registry.load(name, version)
            except RegistryError as exc:
                problems.append(str(exc))
        time.sleep(0.05)


def test_worker_killed_mid_job_is_redelivered_and_publishes_once(topology: Topology) -> None:
    registry = ModelRegistry(topology.registry)
    before = registry.versions(topology.model_name)
    long_run = {**OVERRIDES, "episodes": 60}
    job_id = topology.retrain(_spec(DATASETS["good"], overrides=long_run)).json()["id"]
    wait_for(
        lambda: ((topology.job(job_id).get("progress") or {}).get("episode") or 0) >= 3,
        60,
        "the job to be mid-training",
    )
    problems: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=_all_versions_complete, args=(registry, topology.model_name, problems, stop)
    )
    watcher.start()
    try:
        topology.workers[-1].kill_group()  # the worker and its pool child, as when its machine dies
        assert registry.versions(topology.model_name) == before
        topology.start_worker()
        job = topology.wait_job(job_id, timeout=150)
    finally:
        stop.set()
        watcher.join()
    assert job["state"] == "SUCCESS", job
    assert problems == []
    published = [
        v
        for v in registry.versions(topology.model_name)
        if registry.manifest(topology.model_name, v).job_id == job_id
    ]
    assert published == [job["report"]["version"]]
    assert "resuming from checkpoint" in topology.workers[-1].log() or "resumed" in topology.workers[-1].log()


def test_cancel_stops_the_job_and_cleans_up(topology: Topology) -> None:
    registry = ModelRegistry(topology.registry)
    before = registry.versions(topology.model_name)
    job_id = topology.retrain(_spec(DATASETS["good"], overrides={**OVERRIDES, "episodes": 200})).json()["id"]
    wait_for(lambda: ((topology.job(job_id).get("progress") or {}).get("episode") or 0) >= 1, 60, "training")
    with topology.client(1) as c:
        response = c.delete(f"/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    job = topology.wait_job(job_id, timeout=60)
    assert job["state"] == "REVOKED", job
    assert not (topology.root / "work" / job_id).exists()
    assert registry.versions(topology.model_name) == before


def test_redis_down_answers_503_while_scoring_goes_on(topology: Topology) -> None:
    topology.stop_redis()
    try:
        response = topology.retrain(_spec(DATASETS["good"]))
        assert response.status_code == 503
        assert (
            "unreachable" in response.json()["detail"]
            and topology.redis_url.split("@")[-1] in response.json()["detail"]
        )
        with topology.client(1) as c:
            assert c.get("/jobs").status_code == 503
        assert all(_assess(topology, i) == 200 for i in range(2) for _ in range(5))
    finally:
        topology.start_redis()
    response = wait_for(
        lambda: (
            (
                r := topology.retrain(_spec(DATASETS["good"], overrides={**OVERRIDES, "episodes": 2}))
            ).status_code
            == 202
            and r
        ),
        30,
        "retraining to accept jobs again",
    )
    assert topology.wait_job(response.json()["id"])["state"] == "SUCCESS"
