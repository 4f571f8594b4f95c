"""The servers `bench.service_latency` measures, started by `usqa.local_stack`; their CPU and RSS from /proc."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil

from bench.latency_load import Result
from usqa.local_stack import ManagedProcess

SERVER_START_TIMEOUT_S = 120.0


class Server:
    """A serving process started through `usqa.local_stack`; CPU and RSS are read from its /proc entry."""

    def __init__(self, proc: ManagedProcess, port: int) -> None:
        if proc.popen is None:
            raise ValueError(f"{proc.name} was never started")
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.process = psutil.Process(proc.popen.pid)

    def cpu_seconds(self) -> float:
        return float(sum(self.process.cpu_times()[:2]))

    def thread_cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds of (the main thread, where uvicorn runs the event loop; every other live thread)."""
        loop = other = 0.0
        for thread in self.process.threads():
            spent = thread.user_time + thread.system_time
            if thread.id == self.process.pid:
                loop += spent
            else:
                other += spent
        return loop, other

    def context_switches(self) -> tuple[int, int]:
        """Context switches so far, voluntary and not, of (the event loop's thread; every other live thread)."""
        loop = other = 0
        for thread in self.process.threads():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                status = Path(f"/proc/{self.process.pid}/task/{thread.id}/status").read_text()
                count = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
                if thread.id == self.process.pid:
                    loop += count
                else:
                    other += count
        return loop, other

    def rss_mb(self) -> float:
        return round(self.process.memory_info().rss / 2**20, 1)

    def stop(self) -> None:
        self.proc.stop(timeout=20)


def measured(server: Server, scenario: Coroutine[Any, Any, Result]) -> Result:
    cpu0, (loop0, other0) = server.cpu_seconds(), server.thread_cpu_seconds()
    switches0 = server.context_switches()
    result = asyncio.run(scenario)
    result.cpu_cores = round((server.cpu_seconds() - cpu0) / result.duration_s, 2)
    loop1, other1 = server.thread_cpu_seconds()
    switches1 = server.context_switches()
    result.loop_cpu_s, result.other_cpu_s = round(loop1 - loop0, 4), round(other1 - other0, 4)
    result.loop_switches = switches1[0] - switches0[0]
    result.other_switches = switches1[1] - switches0[1]
    result.rss_mb = server.rss_mb()
    return result
