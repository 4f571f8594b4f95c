"""Commands, waits and the log: how every step runs a command and says what went wrong."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from scripts.compose_test.config import REPO_ROOT
from usqa.local_stack import wait_for

T = TypeVar("T")


class Failed(RuntimeError):
    """A step that did not do what a user expects; the message says which and why."""


def log(text: str) -> None:
    print(f"compose-test: {text}", flush=True)


def run(cmd: list[str], timeout: float, *, check: bool = True, env: dict[str, str] | None = None) -> str:
    """stdout of `cmd`; a non-zero exit raises `Failed` with the tail of its output."""
    try:
        result = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{' '.join(cmd[:4])} ... ran past {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise Failed(
            f"{' '.join(cmd[:4])} ... exited {result.returncode}: {(result.stderr or result.stdout)[-1500:]}"
        )
    return result.stdout


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    return run(["docker", *args], timeout, check=check)


def until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """`wait_for` with the message this script raises."""
    try:
        value = wait_for(predicate, timeout, what, interval=interval)
    except TimeoutError as exc:
        raise Failed(str(exc)) from exc
    assert value is not None
    return value


@contextmanager
def phase(times: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{name} ...")
    try:
        yield
    finally:
        times[name] = time.monotonic() - started
