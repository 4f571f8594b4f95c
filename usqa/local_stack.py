"""usqa's processes on one machine: redis-server (or an embedded broker), the API and retraining workers.

The one process manager of the repository: `usqa demo` runs the whole loop with these, the test suite runs
the deployment's topology with them and the benchmarks (bench/) start what they measure with them, so all
start the parts exactly as an operator would: separate processes configured by `USQA_*` variables, each in
its own session (a machine dying is a SIGKILL of the group), with its output in a log file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
START_TIMEOUT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[1]


class StackError(RuntimeError):
    """A part that did not start; the message ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy, or raise `TimeoutError` naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class ManagedProcess:
    """A subprocess in its own session, its output appended to `log_path`."""

    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = dict(env)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def failed(self, what: str) -> StackError:
        return StackError(f"{self.name} {what}; last lines of {self.log_path}:\n{self.log()[-2000:]}")

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
        # SIGTERM to the process itself: it shuts its own children down (a worker's pool finishes cleanly).
        self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def start_redis(port: int, workdir: Path, *, appendonly: bool = True) -> ManagedProcess:
    """A private redis-server on 127.0.0.1:`port`; append-only by default, so queued jobs survive restarts."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError("redis-server is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(workdir)]
    cmd += ["--appendonly", "yes" if appendonly else "no"]
    proc = ManagedProcess("redis-server", cmd, os.environ, workdir / "redis.log").start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: redis_answers(url) or not proc.alive, 10, "redis-server")
    except TimeoutError as exc:
        raise proc.failed("did not answer") from exc
    if not proc.alive:
        raise proc.failed("exited")
    return proc


def start_server(
    name: str,
    cmd: list[str],
    env: Mapping[str, str],
    log_path: Path,
    port: int,
    path: str = "/healthz",
    timeout: float = START_TIMEOUT_S,
) -> ManagedProcess:
    """`cmd`, an HTTP server on 127.0.0.1:`port`, returned once GET `path` answers 200."""
    import httpx

    proc = ManagedProcess(name, cmd, env, log_path).start()

    def answers() -> bool:
        if not proc.alive:
            raise proc.failed("exited")
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout, name)
    except TimeoutError as exc:
        proc.stop()
        raise proc.failed(f"did not answer {path}") from exc
    return proc


def start_api(
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    name: str = "api",
    *,
    log_level: str = "info",
    ready_path: str = "/healthz",
    timeout: float = START_TIMEOUT_S,
) -> ManagedProcess:
    """`python -m usqa.service.api.cli serve` on 127.0.0.1:`port`, returned once `ready_path` answers."""
    cmd = [
        sys.executable,
        "-m",
        "usqa.service.api.cli",
        "serve",
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]
    return start_server(name, cmd, env, log_path, port, ready_path, timeout)


def start_worker(env: Mapping[str, str], log_path: Path, name: str = "worker") -> ManagedProcess:
    """`python -m usqa worker`, returned once Celery says it is ready."""
    cmd = [sys.executable, "-m", "usqa", "worker", "--hostname", f"{name}@{socket.gethostname()}"]
    proc = ManagedProcess(name, cmd, env, log_path).start()

    def ready() -> bool:
        if not proc.alive:
            raise proc.failed("exited")
        return " ready." in proc.log()

    try:
        wait_for(ready, START_TIMEOUT_S, name)
    except TimeoutError as exc:
        proc.stop()
        raise proc.failed("did not become ready") from exc
    return proc


@dataclass(frozen=True)
class Broker:
    """Where jobs go: a Redis URL (also the result backend), or kombu's filesystem transport + file results."""

    redis_url: str | None
    broker_url: str | None
    result_backend: str | None
    description: str

    def env(self) -> dict[str, str]:
        values = {
            "USQA_REDIS_URL": self.redis_url,
            "USQA_BROKER_URL": self.broker_url,
            "USQA_RESULT_BACKEND": self.result_backend,
        }
        return {k: v for k, v in values.items() if v}


def embedded_broker(root: Path) -> Broker:
    """No Redis at all: kombu's filesystem transport and Celery's file result backend, under `root`."""
    results = (root / "results").resolve()
    results.mkdir(parents=True, exist_ok=True)
    return Broker(
        redis_url=None,
        broker_url=f"filesystem://{(root / 'queue').resolve()}",
        result_backend=f"file://{results}",
        description=f"embedded broker (kombu filesystem transport + file results under {root})",
    )
