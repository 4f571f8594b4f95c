from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from usqa.cli import RUNTIME_COMMANDS
from usqa.service.api.cli import register

from ..conftest import MODEL_NAME, REPO_ROOT

START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_is_a_usqa_command() -> None:
    assert "usqa.service.api.cli" in RUNTIME_COMMANDS
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9001", "--registry", "models"])
    assert (args.host, args.port, args.registry, args.model) == ("0.0.0.0", 9001, Path("models"), None)


def test_usqa_serve_starts_a_ready_service(registry_root: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "USQA_REGISTRY": str(registry_root),
        "USQA_MODEL_NAME": MODEL_NAME,
        "USQA_WARMUP_RUNS": "1",
    }
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "usqa",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "usqa serve did not become ready"
            time.sleep(0.1)
        assert ready.json()["model"]["name"] == MODEL_NAME
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("usqa serve did not stop on SIGINT")
    assert proc.returncode == 0, log.read_text()
