"""The deployment's topology without Docker: a private redis-server, API processes, retraining workers.

Every part is a real process started as an operator would (`python -m service.api.cli serve`, `python -m usqa
worker`), configured only through `USQA_*` variables, talking over 127.0.0.1. Each process runs in its own
session so a test can SIGKILL a worker with its pool children, as when a machine dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "topology-test-token"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A subprocess in its own session, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process and every child it started (a worker's pool included)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        if sig == signal.SIGKILL:
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive or self.popen is None:
            return
        self.kill_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)


@dataclass
class Topology:
    root: Path
    redis_port: int
    model_name: str = "usqa-topology"
    extra_env: dict[str, str] = field(default_factory=dict)
    apis: list[tuple[Proc, str]] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    redis: Proc | None = None

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
                "USQA_JOB_SOFT_TIME_LIMIT_S": "30",
                "USQA_JOB_TIME_LIMIT_S": "35",
                "USQA_JOB_VISIBILITY_TIMEOUT_S": "40",
                "USQA_JOB_RETRY_BACKOFF_S": "1",
                "OMP_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # -- processes -------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed (make install installs it)"
        workdir = self.root / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.redis_port),
            "--save",
            "",
            "--dir",
            str(workdir),
        ]
        # Append-only persistence, as the compose file runs it: queued jobs survive a Redis restart.
        cmd += ["--appendonly", "yes"]
        self.redis = Proc("redis", cmd, self.env(), self.root / "logs" / "redis.log").start()
        wait_for(self._redis_answers, 10, "redis-server to answer")

    def _redis_answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.redis_url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()
        wait_for(lambda: not self._redis_answers(), 10, "redis-server to stop")

    def start_api(self) -> str:
        port = free_port()
        cmd = [sys.executable, "-m", "service.api.cli", "serve", "--port", str(port), "--log-level", "info"]
        proc = Proc(f"api{len(self.apis)}", cmd, self.env(), self.root / "logs" / f"api{len(self.apis)}.log")
        url = f"http://127.0.0.1:{port}"
        self.apis.append((proc.start(), url))

        def healthy() -> bool:
            assert proc.alive, f"API exited:\n{proc.log()[-3000:]}"
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, START_TIMEOUT_S, f"API {url}")
        return url

    def start_worker(self) -> Proc:
        name = f"worker{len(self.workers)}"
        cmd = [sys.executable, "-m", "usqa", "worker", "--hostname", f"{name}@topology"]
        proc = Proc(name, cmd, self.env(), self.root / "logs" / f"{name}.log").start()
        self.workers.append(proc)

        def ready() -> bool:
            assert proc.alive, f"worker exited:\n{proc.log()[-3000:]}"
            return " ready." in proc.log()

        wait_for(ready, START_TIMEOUT_S, f"{name} to be ready")
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

    def upload(self, archive: Path, i: int = 0) -> httpx.Response:
        with self.client(i) as c, archive.open("rb") as f:
            return c.post("/datasets", files={"file": (archive.name, f, "application/zip")})

    def retrain(self, spec: dict[str, Any], i: int = 0, **headers: str) -> httpx.Response:
        with self.client(i) as c:
            return c.post("/retrain", json=spec, headers=headers)

    def job(self, job_id: str, i: int = 0) -> dict[str, Any]:
        with self.client(i) as c:
            response = c.get(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            return dict(response.json())

    def wait_job(self, job_id: str, timeout: float = 120, i: int = 0) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (j := self.job(job_id, i))["state"] in ("SUCCESS", "FAILURE", "REVOKED") and j,
                timeout,
                f"job {job_id} to finish",
                interval=0.5,
            )
        )

    def events(self, job_id: str, i: int = 0, timeout: float = 120) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's server-sent events, (event, data), until the stream ends."""
        with self.client(i) as c, c.stream("GET", f"/jobs/{job_id}/events", timeout=timeout) as response:
            assert response.status_code == 200, response.read()
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: "):
                    yield event, json.loads(line[len("data: ") :])


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    return archive
