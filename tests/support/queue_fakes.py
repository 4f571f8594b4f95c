"""A fake model for the inference queue's tests: records its batches, can hold the first or fail, and
scores a frame by its mean level."""

from __future__ import annotations

import threading
from typing import cast

import numpy as np

from usqa.service.inference.model import LoadedModel, ModelOutputs

WAIT_S = 5.0


class FakeModel:
    """Scores a frame by its mean; the first run can be held at a gate to build up a queue behind it."""

    def __init__(self, name: str = "fake", *, hold_first: bool = False, fail: bool = False) -> None:
        self.name = name
        self.number = 1
        self.calls: list[int] = []
        self.threads: list[int] = []  # the thread of each run
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not hold_first:
            self.gate.set()
        self.fail = fail

    def run(self, frames: np.ndarray) -> ModelOutputs:
        self.calls.append(len(frames))
        self.threads.append(threading.get_ident())
        self.entered.set()
        assert self.gate.wait(WAIT_S)
        if self.fail:
            raise RuntimeError("graph failed")
        return ModelOutputs(scores=frames.reshape(len(frames), -1).mean(axis=1).astype(np.float32))


def as_model(fake: FakeModel) -> LoadedModel:
    return cast(LoadedModel, fake)


def frames(*levels: int) -> np.ndarray:
    return np.stack([np.full((4, 4), level, dtype=np.uint8) for level in levels])


def scores(model: LoadedModel, outputs: ModelOutputs) -> list[float]:
    return [float(s) for s in outputs.scores]
