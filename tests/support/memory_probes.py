"""Memory of the server under test as the reliability suite measures it: its process and its children (the
decode lane's process), sampled for a peak while requests run."""

from __future__ import annotations

import contextlib
import threading
from typing import Final

import psutil

RSS_SAMPLE_S: Final = 0.02
MB: Final = 1_000_000


def tree_rss_mb() -> float:
    """This process's resident set and its children's: the server runs here, its decode lane in a child."""
    return sum(own_and_children_rss_mb())


def own_and_children_rss_mb() -> tuple[float, float]:
    """(this process's resident set, its children's together): where memory that stays behind is held."""
    me = psutil.Process()
    children = 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            children += child.memory_info().rss
    return me.memory_info().rss / MB, children / MB


class TreeRssSampler(threading.Thread):
    """`tree_rss_mb` every RSS_SAMPLE_S until stopped; keeps the largest."""

    def __init__(self) -> None:
        super().__init__(name="tree-rss-sampler", daemon=True)
        self.peak = tree_rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_S):
            self.peak = max(self.peak, tree_rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak
