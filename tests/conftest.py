"""Fixtures shared by the whole suite: a real Redis server."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis on 127.0.0.1:6379 (as on CI), else a private `redis-server` started for the run."""
    if _redis_answers(DEFAULT_REDIS_URL):
        yield DEFAULT_REDIS_URL
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "these tests need Redis: none answers on 127.0.0.1:6379 and redis-server is not installed"
        )
    port = _free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `torch` are skipped, with the reason shown, where torch is not installed (the torch-free
    venvs of `make test-pythons`); everywhere else they run."""
    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason="needs torch, which this environment does not install")
    for item in items:
        if item.get_closest_marker("torch") is not None:
            item.add_marker(skip)
