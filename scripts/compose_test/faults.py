"""Failures the stack must survive: a worker killed mid-job, an API replica killed behind the proxy."""

from __future__ import annotations

import time
from typing import Any

import httpx

from scripts.compose_test.config import (
    JOB_TIMEOUT_S,
    KILLED_API_REQUESTS,
    LONG_JOB_OVERRIDES,
    REDELIVERY_TIMEOUT_S,
    SIDE_MODEL,
)
from scripts.compose_test.engine import Stack, container_logs, healthy_now
from scripts.compose_test.jobs import job, job_worker, submit, versions, wait_job
from scripts.compose_test.shell import Failed, docker, log, until
from scripts.compose_test.user_paths import png_frame


def kill_worker_mid_job(stack: Stack, dataset: str) -> dict[str, Any]:
    """A long debug job; `docker kill` its worker at episode 2; it comes back, finishes once, publishes once."""
    before = versions(stack, SIDE_MODEL)
    job_id = submit(stack, dataset, SIDE_MODEL, LONG_JOB_OVERRIDES)
    until(
        lambda: ((job(stack, job_id).get("progress") or {}).get("episode") or 0) >= 2,
        JOB_TIMEOUT_S,
        "the long job to be mid-training",
    )
    victim = job_worker(stack, job_id)
    # Its healthcheck keeps passing while a job trains (the worker's main process answers the ping).
    checks = healthy_now(victim, "while training")
    episode = (job(stack, job_id).get("progress") or {}).get("episode")
    killed_at = time.monotonic()
    docker("kill", victim)
    log(f"killed worker {victim[:12]} at episode {episode} of job {job_id}")
    status = wait_job(stack, job_id, REDELIVERY_TIMEOUT_S)
    finisher = job_worker(stack, job_id)
    if finisher == victim:
        raise Failed("the killed worker finished the job")
    published = sorted(set(versions(stack, SIDE_MODEL)) - set(before))
    if published != [status["report"]["version"]]:
        raise Failed(f"job {job_id} published {published}, expected exactly [{status['report']['version']}]")
    # usqa.trainer.api logs "resumed <work root>/<job id>/... at episode N" when a delivery finds the checkpoint.
    resumed_at = [
        int(line.rsplit(" ", 1)[-1])
        for line in container_logs(finisher).splitlines()
        if "resumed /" in line and f"/{job_id}/" in line and line.rsplit(" ", 1)[-1].isdigit()
    ]
    return {
        "killed_at_episode": episode,
        "back_after_s": time.monotonic() - killed_at,
        "version": published[0],
        "resumed_at_episode": resumed_at[-1] if resumed_at else None,
        "worker_healthcheck_s": checks,
    }


def kill_one_api(stack: Stack) -> dict[str, Any]:
    """`docker kill` one replica; every request through the proxy right after still gets its answer."""
    apis = stack.containers("api")
    docker("kill", apis[-1])
    png = png_frame()
    failures: list[str] = []
    started = time.monotonic()
    with httpx.Client(base_url=stack.base, timeout=30) as c:
        for i in range(KILLED_API_REQUESTS):
            response = (
                c.get("/readyz")
                if i % 2
                else c.post("/assess", content=png, headers={"Content-Type": "image/png"})
            )
            if response.status_code != 200:
                failures.append(
                    f"{response.request.method} {response.request.url.path}: {response.status_code}"
                )
            time.sleep(0.1)
    if failures:
        raise Failed(
            f"with one API replica killed, {len(failures)} of {KILLED_API_REQUESTS} failed: {failures[:5]}"
        )
    return {"served": KILLED_API_REQUESTS, "seconds": time.monotonic() - started}
