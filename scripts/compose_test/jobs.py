"""Retraining jobs through the API: submitted, awaited, traced to their worker, and a version promoted."""

from __future__ import annotations

import json
from typing import Any

from scripts.compose_test.config import JOB_TIMEOUT_S, SERVED_MODEL, SIDE_MODEL, SWAP_TIMEOUT_S
from scripts.compose_test.engine import Stack, container_logs, exec_json, healthy_now, inspect
from scripts.compose_test.shell import Failed, docker, until
from usqa.client import UsqaError


def submit(stack: Stack, dataset: str, model: str, overrides: dict[str, Any] | None = None) -> str:
    spec = {
        "dataset": dataset,
        "task": "classify",
        "config": "debug",
        "model": model,
        "overrides": overrides or {},
        # A debug run cannot beat the trivial predictor, so its verdict refuses it; this test is about the
        # containers (jobs, redelivery, promotion), not about the model.
        "force": True,
    }
    try:
        with stack.usqa() as usqa:
            return usqa.retrain(spec).id
    except UsqaError as exc:
        raise Failed(f"POST /retrain: {exc}") from exc


def job(stack: Stack, job_id: str) -> dict[str, Any]:
    try:
        with stack.usqa() as usqa:
            return usqa.job(job_id).body
    except UsqaError as exc:
        raise Failed(f"GET /jobs/{job_id}: {exc}") from exc


def wait_job(stack: Stack, job_id: str, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        status = job(stack, job_id)
        return status if status["state"] in ("SUCCESS", "FAILURE", "REVOKED") else None

    status = until(finished, timeout, f"job {job_id}", interval=1.0)
    if status["state"] != "SUCCESS":
        raise Failed(f"job {job_id} ended {status['state']}: {status.get('error')}")
    return status


def job_worker(stack: Stack, job_id: str) -> str:
    """The worker container that stored the job's latest state (Celery's extended result names its node)."""
    redis = stack.containers("redis")[0]
    meta = json.loads(
        docker("exec", redis, "redis-cli", "--raw", "GET", f"celery-task-meta-{job_id}") or "{}"
    )
    hostname = str(meta.get("worker") or "").split("@")[-1]
    workers = stack.containers("worker", running=False)
    for container in workers:
        if inspect(container, "{{.Config.Hostname}}") == hostname:
            return container
    # No node name stored yet: the worker whose log says it received the job (the latest one to).
    received = [c for c in workers if f"[{job_id}] received" in container_logs(c)]
    if len(received) == 1:
        return received[0]
    raise Failed(f"job {job_id}: no worker container is node {meta.get('worker')!r} (received by {received})")


def versions(stack: Stack, model: str) -> list[int]:
    try:
        with stack.usqa() as usqa:
            return list(usqa.model(model)["versions"])
    except UsqaError as exc:
        if exc.status == 404:
            return []
        raise Failed(f"GET /models/{model}: {exc}") from exc


def run_two_jobs(stack: Stack, dataset: str) -> dict[str, Any]:
    """Two debug jobs at once: each worker takes one (prefetch 1, one job at a time)."""
    served = submit(stack, dataset, SERVED_MODEL)
    side = submit(stack, dataset, SIDE_MODEL)
    reports = {job_id: wait_job(stack, job_id, JOB_TIMEOUT_S)["report"] for job_id in (served, side)}
    workers = {job_id: job_worker(stack, job_id) for job_id in (served, side)}
    if len(set(workers.values())) != 2:
        raise Failed(f"both jobs ran on one worker: {workers}")
    checks = {k: v for c in stack.containers("worker") for k, v in healthy_now(c, "after its job").items()}
    return {
        "served_job": served,
        "version": reports[served]["version"],
        "promoted": reports[served]["promoted"],
        "worker_healthcheck_s": checks,
    }


def promote_everywhere(stack: Stack, version: int) -> None:
    """POST promote, then every replica's own /readyz serves `version`, none restarted."""
    apis = stack.containers("api")
    starts = {c: inspect(c, "{{.State.StartedAt}} {{.RestartCount}}") for c in apis}
    try:
        with stack.usqa() as usqa:
            usqa.promote(SERVED_MODEL, version)
    except UsqaError as exc:
        raise Failed(f"promote: {exc}") from exc
    for container in apis:

        def serves(container: str = container) -> bool:
            readiness = exec_json(container, "http://127.0.0.1:8000/readyz")
            return bool((readiness.get("model") or {}).get("version") == version)

        until(serves, SWAP_TIMEOUT_S, f"replica {container[:12]} to serve version {version}")
    if {c: inspect(c, "{{.State.StartedAt}} {{.RestartCount}}") for c in apis} != starts:
        raise Failed("an API replica restarted during the promotion")
