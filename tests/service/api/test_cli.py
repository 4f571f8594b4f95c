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
from usqa.contracts.cli import UsageError
from usqa.service.api.cli import MSG_OPEN_WITHOUT_TOKEN, check_listen_address, register
from usqa.service.settings import Settings

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


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_loopback_serves_without_a_token(host: str) -> None:
    check_listen_address(host, Settings(api_token=None))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "scanner-gw.example"])
def test_another_address_needs_a_token_or_a_trusted_network(host: str) -> None:
    with pytest.raises(UsageError) as refused:
        check_listen_address(host, Settings(api_token=None))
    assert str(refused.value) == MSG_OPEN_WITHOUT_TOKEN.format(host=host or "every interface")
    assert "USQA_TRUSTED_NETWORK=1" in str(refused.value)
    check_listen_address(host, Settings(api_token="a-token-long-enough-for-production"))
    check_listen_address(host, Settings(api_token=None, trusted_network=True))
    with pytest.raises(UsageError):
        check_listen_address(host, Settings(api_token=""))  # an empty USQA_API_TOKEN= is no token


def test_usqa_serve_on_every_interface_without_a_token_exits_with_the_message(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("USQA_")}
    result = subprocess.run(
        [sys.executable, "-m", "usqa", "serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == f"usqa serve: {MSG_OPEN_WITHOUT_TOKEN.format(host='0.0.0.0')}"


def test_the_trusted_network_is_said_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USQA_TRUSTED_NETWORK", "1")
    assert Settings().trusted_network is True
