"""What the inference queue runs: a job (one request's work around the shared graph run), the timing of the
batch it ran in, and what the queue tells its observers of each batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from usqa.service.inference.model import LoadedModel, ModelOutputs

R = TypeVar("R")


class InferenceJob(ABC, Generic[R]):
    """One request's work around the shared graph run; both methods run in a worker thread (a stream frame's on
    the event loop, when the queue runs `frames_on_loop`)."""

    # Frames this job will bring, for batching decisions before it is prepared (a cine may bring more).
    frame_hint: int = 1
    # One stream frame: short enough for the event loop to run itself when the queue runs `frames_on_loop`.
    fits_loop: bool = False

    @abstractmethod
    def prepare(self) -> np.ndarray:
        """The model input frames, uint8 [N, S, S]; raising here fails this job only."""

    @abstractmethod
    def finish(self, model: LoadedModel, outputs: ModelOutputs) -> R:
        """The job's result from its slice of the batch outputs."""

    def decode_again(self) -> None:
        """Repeat `prepare`'s decoding and discard it (the capacity probe times it); nothing to repeat here."""

    def finish_again(self, model: LoadedModel, outputs: ModelOutputs) -> None:
        """Repeat `finish`'s work and discard it (the capacity probe times it); here nothing, as `finish` may
        have effects beyond its result."""


class ArrayJob(InferenceJob[R]):
    """Frames already prepared, and what to make of their outputs."""

    def __init__(self, frames: np.ndarray, finish: Callable[[LoadedModel, ModelOutputs], R]) -> None:
        self.frames = frames
        self.frame_hint = len(frames)
        self._finish = finish

    def prepare(self) -> np.ndarray:
        return self.frames

    def finish(self, model: LoadedModel, outputs: ModelOutputs) -> R:
        return self._finish(model, outputs)


@dataclass(frozen=True)
class BatchTiming:
    queue_s: float  # submitted -> a worker started on it
    prepare_s: float  # its own decoding and preparation
    inference_s: float  # the graph run of the batch it was in
    batch_frames: int


BatchObserver = Callable[[LoadedModel, int, float], None]
# (frames, seconds, cpu_seconds, warm): a batch's whole worker time, preparation to verdicts (the capacity meter's
# W), the worker thread's CPU time in it, and whether its worker took it without waiting (it had just finished
# another: warm caches, no wake-up).
WorkObserver = Callable[[int, float, float, bool], None]
# (frames, cpu_seconds, spent_seconds): a batch's decoding, graphs and verdicts run again straight after it, results
# discarded, the CPU time of the warmest repetition, and of all of them (no frame's cost: the meter leaves it out);
# CPU time, because on a shared core the event loop answering the batch runs meanwhile.
ProbeObserver = Callable[[int, float, float], None]
