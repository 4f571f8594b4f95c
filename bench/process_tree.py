"""A process and its children as the footprint benchmark measures them: RSS, PSS, CPU seconds, sampled peaks."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

from usqa.local_stack import ManagedProcess

SAMPLE_S = 0.2
PSS_EVERY = 5  # PSS once a second: reading it costs the bench a few ms per process
MB = 2**20


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_mb(root: psutil.Process) -> float:
    """RSS of a process and its children; pages a fork shares count once in each (an upper bound)."""
    total = 0
    for proc in _tree(root):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


def _pss_bytes(pid: int) -> int:
    # smaps_rollup: one walk of the page tables (a few ms for a torch process), so it is sampled less often.
    with Path(f"/proc/{pid}/smaps_rollup").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_pss_mb(root: psutil.Process) -> float:
    """PSS of a process and its children: each shared page is split between its sharers, so the sum is what
    the tree really holds (RSS stands in where the kernel has no smaps_rollup)."""
    total = 0
    for proc in _tree(root):
        try:
            total += _pss_bytes(proc.pid)
        except FileNotFoundError:
            continue  # exited between the listing and the read
        except OSError:
            total += proc.memory_info().rss
    return total / MB


def tree_cpu_s(root: psutil.Process) -> float:
    """CPU seconds of a process and its children, reaped children included (Linux adds them to the parent)."""
    total = 0.0
    for proc in _tree(root):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class PeakSampler:
    """Samples a process tree's RSS every `SAMPLE_S` seconds (and its PSS every `PSS_EVERY` samples) in a
    thread; keeps the peaks."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss_mb = max(self.peak_rss_mb, tree_rss_mb(self.root))
            if self.samples % PSS_EVERY == 0:
                self.peak_pss_mb = max(self.peak_pss_mb, tree_pss_mb(self.root))
            self.samples += 1
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def pid_of(proc: ManagedProcess) -> psutil.Process:
    assert proc.popen is not None
    return psutil.Process(proc.popen.pid)
