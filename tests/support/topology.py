"""The deployment's topology without Docker: a private redis-server, API processes, retraining workers.

Every part is a real process started as an operator would (`usqa.local_stack`: `python -m usqa.service.api.cli
serve`, `python -m usqa worker`), configured only through `USQA_*` variables, talking over 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from usqa.client import Client
from usqa.client.archives import zip_folder
from usqa.client.core import retrain_request, upload_request
from usqa.local_stack import (
    ManagedProcess,
    free_port,
    redis_answers,
    start_api,
    start_redis,
    start_worker,
    wait_for,
)

__all__ = ["TOKEN", "Topology", "free_port", "wait_for", "zip_folder"]

TOKEN = "topology-test-token"


@dataclass
class Topology:
    root: Path
    redis_port: int
    model_name: str = "usqa-topology"
    extra_env: dict[str, str] = field(default_factory=dict)
    apis: list[tuple[ManagedProcess, str]] = field(default_factory=list)
    workers: list[ManagedProcess] = field(default_factory=list)
    redis: ManagedProcess | None = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def registry(self) -> Path:
        return self.root / "models"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("USQA_")}
        env.update(
            {
                "USQA_REDIS_URL": self.redis_url,
                "USQA_REGISTRY": str(self.registry),
                "USQA_DATA_ROOT": str(self.root / "data"),
                "USQA_JOBS_ROOT": str(self.root / "jobs"),
                "USQA_WORK_ROOT": str(self.root / "work"),
                "USQA_MODEL_NAME": self.model_name,
                "USQA_API_TOKEN": TOKEN,
                "USQA_REGISTRY_POLL_S": "2",
                "USQA_INFERENCE_WORKERS": "1",
                "USQA_WARMUP_RUNS": "1",
                # Test jobs take seconds: limits that keep a redelivery after a SIGKILL under a minute.
                "USQA_JOB_SOFT_TIME_LIMIT_S": "45",
                "USQA_JOB_TIME_LIMIT_S": "50",
                "USQA_JOB_VISIBILITY_TIMEOUT_S": "55",
                "USQA_JOB_RETRY_BACKOFF_S": "1",
                "OMP_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # -- processes -------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis = start_redis(self.redis_port, self.root / "redis")

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()
        wait_for(lambda: not redis_answers(self.redis_url), 10, "redis-server to stop")

    def start_api(self) -> str:
        port, n = free_port(), len(self.apis)
        proc = start_api(port, self.env(), self.root / "logs" / f"api{n}.log", name=f"api{n}")
        url = f"http://127.0.0.1:{port}"
        self.apis.append((proc, url))
        return url

    def start_worker(self) -> ManagedProcess:
        n = len(self.workers)
        proc = start_worker(self.env(), self.root / "logs" / f"worker{n}.log", name=f"worker{n}")
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            proc.stop()
        for proc, _ in self.apis:
            proc.stop()
        if self.redis is not None:
            self.redis.stop()

    # -- clients ---------------------------------------------------------------------------------------

    def client(self, i: int = 0, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.apis[i][1], headers=headers, timeout=60)

    def served_version(self, i: int) -> int | None:
        body = httpx.get(f"{self.apis[i][1]}/readyz", timeout=5).json()
        return None if body.get("model") is None else int(body["model"]["version"])

    def wait_served(self, version: int, timeout: float = 30) -> None:
        for i in range(len(self.apis)):
            wait_for(lambda i=i: self.served_version(i) == version, timeout, f"API {i} to serve v{version}")

    def usqa(self, i: int = 0, retries: int = 0) -> Client:
        """The usqa client on API `i`; no retries by default, so a test sees the answer the API gave."""
        return Client(self.apis[i][1], token=TOKEN, retries=retries, timeout_s=60)

    def upload(self, archive: Path, i: int = 0) -> httpx.Response:
        """POST /datasets as the client builds it; the raw answer (tests check 201 against 200)."""
        with self.usqa(i) as usqa:
            return usqa.send(upload_request(archive))

    def retrain(self, spec: dict[str, Any], i: int = 0, **headers: str) -> httpx.Response:
        """POST /retrain as the client builds it (`headers` may give the Idempotency-Key); the raw answer."""
        request = retrain_request(spec, headers.pop("Idempotency-Key", None))
        request.options["headers"].update(headers)
        with self.usqa(i) as usqa:
            return usqa.send(request)

    def job(self, job_id: str, i: int = 0) -> dict[str, Any]:
        with self.usqa(i) as usqa:
            return usqa.job(job_id).body

    def wait_job(self, job_id: str, timeout: float = 120, i: int = 0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job = self.job(job_id, i)
            return job if job["state"] in ("SUCCESS", "FAILURE", "REVOKED") else None

        return wait_for(finished, timeout, f"job {job_id} to finish", interval=0.5)

    def events(self, job_id: str, i: int = 0, timeout: float = 120) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's server-sent events, (event, data), until the stream ends."""
        with self.usqa(i) as usqa:
            for event in usqa.job_events(job_id, timeout_s=timeout):
                yield event.event, event.data
