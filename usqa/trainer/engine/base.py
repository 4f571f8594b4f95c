"""The base of every training engine: one loop, one event vocabulary, resumable state.

An engine receives its networks, optimisers, data and callbacks; progress, logging, checkpoints and early
stopping are callbacks, not code inside the loop (MONAI `SupervisedTrainer` style). One vocabulary serves
every engine:

- `on_start(engine)`: before the first iteration of `run()` (after a resume, the first remaining one);
- `on_iteration_end(engine, logs)`: after each iteration, with that iteration's logs;
- `on_end(engine)`: once the loop is over (all iterations done, or a callback set `engine.should_stop`);
- `on_exception(engine, error)`: when an iteration or a callback raised, before `run()` re-raises it (MONAI's
  `Events.EXCEPTION_RAISED`): the checkpointer saves the state the run reached and the metrics log writes a
  last line, so a crashed run can be resumed and read. `on_end` does not follow.

An iteration is the engine's unit of work and of resumption: an optimiser step for heating and fine-tuning
(`unit = "step"`), an episode of Algorithm 1 for the RL trainer (`unit = "episode"`). `engine.iteration`
counts the finished ones; `state_dict()` holds everything a resumed run needs to continue exactly as an
uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

Logs = dict[str, Any]


class Callback:
    """Hooks of an engine's run; subclasses override what they need."""

    def on_start(self, engine: Engine) -> None:
        """Called before the first iteration of `run()`."""

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        """Called after every iteration; `engine.iteration` already counts it."""

    def on_end(self, engine: Engine) -> None:
        """Called once the loop is over (not when an exception left it)."""

    def on_exception(self, engine: Engine, error: Exception) -> None:
        """Called when `error` left the loop; `engine.iteration` counts the iterations that completed."""


class Engine:
    """Runs `run_iteration` until `iterations` are done or a callback asks to stop.

    Subclasses define `run_iteration` (and `iteration_logs` to complete its logs once the iteration is
    counted), `state_dict`/`load_state_dict`, and `networks` (what a best-model callback keeps).
    """

    unit: ClassVar[str] = "iteration"
    # What a progress bar shows: label -> format of the logs (e.g. {"loss": "{loss:.3f}"}).
    progress_fields: ClassVar[dict[str, str]] = {}

    def __init__(self, stage: str, iterations: int, callbacks: Sequence[Callback] = ()) -> None:
        self.stage, self.iterations, self.callbacks = stage, iterations, list(callbacks)
        self.iteration = 0
        self.should_stop = False
        self.last_logs: Logs = {}
        self.elapsed_s = 0.0  # wall time of this `run()` so far (not of earlier runs of a resumed one)
        self.eta_s = 0.0

    @property
    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def start(self) -> None:
        """Prepare the networks before the callbacks' `on_start` (e.g. training mode)."""

    def run_iteration(self) -> Logs:
        raise NotImplementedError

    def iteration_logs(self, logs: Logs) -> Logs:
        """The logs the callbacks get, once `iteration`, `elapsed_s` and `eta_s` count this iteration."""
        return logs

    def progress_metrics(self, logs: Logs) -> dict[str, float]:
        """The headline numbers of an iteration, for a job's progress report."""
        return {
            k: float(v) for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }

    def run(self) -> None:
        """Run the remaining iterations, calling the callbacks."""
        self.should_stop = False
        try:
            self.start()
            for callback in self.callbacks:
                callback.on_start(self)
            started, done_here = time.perf_counter(), 0
            while self.iteration < self.iterations and not self.should_stop:
                logs = self.run_iteration()
                self.iteration += 1
                done_here += 1
                self.elapsed_s = time.perf_counter() - started
                self.eta_s = self.elapsed_s / done_here * (self.iterations - self.iteration)
                self.last_logs = logs = self.iteration_logs(logs)
                for callback in self.callbacks:
                    callback.on_iteration_end(self, logs)
        except Exception as error:
            self._fire_exception(error)
            raise
        for callback in self.callbacks:
            callback.on_end(self)

    def _fire_exception(self, error: Exception) -> None:
        """Every callback's `on_exception`; one that fails too is noted on `error`, and the rest still run."""
        for callback in self.callbacks:
            try:
                callback.on_exception(self, error)
            except Exception as also:
                error.add_note(
                    f"{type(callback).__name__}.on_exception failed too: {type(also).__name__}: {also}"
                )

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
