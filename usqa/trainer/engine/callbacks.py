"""The engines' callbacks: progress bar, JSONL metrics, atomic checkpoints, job progress, history, best model.

Each works with every engine of `usqa.trainer.engine` through the one vocabulary of `usqa.trainer.engine.base`
(`on_start`, `on_iteration_end`, `on_end`, `on_exception`) and what every engine has: `stage`, `unit`, `iteration`,
`iterations`, `networks`, `state_dict()`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from usqa.trainer.engine.base import Callback, Engine, Logs

MSG_NO_METRIC = "BestModel watches {metric!r}, but the engine's logs have only {keys}"
# The key of the metrics log's last line when an exception stopped the run.
EXCEPTION_KEY = "exception"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file, fsync and a rename: a reader never sees half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint_of_kind(path: Path, kind: str, message: str) -> dict[str, Any]:
    """A checkpoint whose payload says `"kind": kind`, refused with `message` (formatted with path) if not."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ValueError(message.format(path=path))
    return state


class ProgressBar(Callback):
    """A tqdm bar over the iterations with the engine's `progress_fields` of the latest logs."""

    def __init__(self, description: str | None = None, enabled: bool = True) -> None:
        self.description, self.enabled = description, enabled
        self.bar: tqdm[Any] | None = None

    def on_start(self, engine: Engine) -> None:
        self.bar = tqdm(
            total=engine.iterations,
            initial=engine.iteration,
            desc=self.description or engine.stage,
            unit=engine.unit,
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if self.bar is not None:
            fields = {label: form.format(**logs) for label, form in engine.progress_fields.items()}
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)

    def on_end(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, engine: Engine, error: Exception) -> None:
        self.on_end(engine)


class MetricsLog(Callback):
    """Appends `{unit: iteration, **logs}` as one JSON line every `every` iterations and at the last one.

    When an exception stops the run, a last line `{unit: iteration, "stage", "exception": "Type: message"}`
    records it, `iteration` counting the completed iterations (the latest ones' logs are written with it if
    `every` had skipped them). On start it drops the lines of this engine's stage past `engine.iteration`, and
    that stage's exception lines: a resumed run's log then matches its checkpoint, and a run started afresh in
    an old file replaces that stage's lines.
    """

    def __init__(self, path: Path, every: int = 1) -> None:
        self.path, self.every = path, max(1, every)
        self.written_at: int | None = None

    def on_start(self, engine: Engine) -> None:
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        # a line without a stage is a single-stage engine's: it is this engine's
        kept = [
            line
            for line in lines
            if line.strip()
            and not (
                (row := json.loads(line)).get("stage", engine.stage) == engine.stage
                and (int(row[engine.unit]) > engine.iteration or EXCEPTION_KEY in row)
            )
        ]
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if engine.iteration % self.every == 0 or engine.iteration == engine.iterations:
            self._write({engine.unit: engine.iteration, **logs})
            self.written_at = engine.iteration

    def on_exception(self, engine: Engine, error: Exception) -> None:
        last = engine.last_logs if self.written_at != engine.iteration and engine.last_logs else {}
        message = f"{type(error).__name__}: {error}"
        self._write({**last, engine.unit: engine.iteration, "stage": engine.stage, EXCEPTION_KEY: message})

    def _write(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True, default=str) + "\n")


class Checkpointer(Callback):
    """Saves `payload(engine)` atomically (fsync) every `every` iterations, at the last one, at the end and
    when an exception stops the run (if the completed iterations are not saved yet), so a crashed run resumes
    from where it got to rather than from the last multiple of `every`.

    `payload` wraps `engine.state_dict()` with what rebuilds the run (its config, class names, a kind tag).
    """

    def __init__(self, path: Path, every: int, payload: Callable[[Engine], dict[str, Any]]) -> None:
        self.path, self.every, self.payload = path, max(1, every), payload
        self.saved_at: int | None = None

    def save(self, engine: Engine) -> None:
        atomic_torch_save(self.payload(engine), self.path)
        self.saved_at = engine.iteration

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if engine.iteration % self.every == 0 or engine.iteration == engine.iterations:
            self.save(engine)

    def on_end(self, engine: Engine) -> None:
        # a run stopped early (or resumed when already finished) still leaves its final state
        if self.saved_at != engine.iteration or not self.path.is_file():
            self.save(engine)

    def on_exception(self, engine: Engine, error: Exception) -> None:
        # `engine.iteration` counts the completed iterations; what the failing one had already changed in the
        # networks is saved with them
        self.on_end(engine)


class ProgressHook(Callback):
    """Calls `report(event)` with {stage, <unit>, <unit>s, metrics, eta_s}: for Celery `update_state`."""

    def __init__(self, report: Callable[[dict[str, Any]], None]) -> None:
        self.report = report

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        self.report(
            {
                "stage": engine.stage,
                engine.unit: engine.iteration,
                f"{engine.unit}s": engine.iterations,
                "metrics": engine.progress_metrics(logs),
                "eta_s": engine.eta_s,
            }
        )


class History(Callback):
    """Keeps every iteration's logs in memory, with its index under the engine's unit (analyses, tests)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        self.logs.append({engine.unit: float(engine.iteration), **logs})


class BestModel(Callback):
    """Keeps the networks of the iteration with the best `metric` of the logs; optionally stops early.

    For the RL trainer, "metric" is the task metric on the validation reward frames. With `patience`, the run
    stops after that many iterations without an improvement of more than `min_delta`; with `restore`, the
    best networks are loaded back into the engine at the end. `keep` names the networks to keep (default: all
    of `engine.networks`); iterations before `start` are neither kept nor counted (e.g. warm-up episodes).
    `state_dict()` goes into a run's checkpoint, so a resumed run remembers the best so far. The RL trainer
    wires it when `config.recipe.best_on_validation` is set (usqa.trainer.amenability.run).
    """

    def __init__(
        self,
        metric: str = "metric",
        mode: Literal["max", "min"] = "max",
        patience: int | None = None,
        min_delta: float = 0.0,
        restore: bool = True,
        keep: tuple[str, ...] | None = None,
        start: int = 0,
    ) -> None:
        self.metric, self.mode, self.patience = metric, mode, patience
        self.min_delta, self.restore, self.keep, self.start = min_delta, restore, keep, start
        self.best_value: float | None = None
        self.best_iteration = 0
        self.best_state: dict[str, Mapping[str, torch.Tensor]] = {}
        self.stopped_at: int | None = None
        self.start_margin = 0.0  # what an iteration must gain over an offered start (offer_start)

    def improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        delta = max(self.min_delta, self.start_margin) if self.best_iteration == 0 else self.min_delta
        if self.mode == "max":
            return value > self.best_value + delta
        return value < self.best_value - delta

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if self.metric not in logs:
            raise KeyError(MSG_NO_METRIC.format(metric=self.metric, keys=sorted(logs)))
        value = float(logs[self.metric])
        if engine.iteration <= self.start:
            return
        if self.improves(value):
            self.best_value, self.best_iteration = value, engine.iteration
            self.best_state = {
                name: copy.deepcopy(network.state_dict()) for name, network in self._kept(engine).items()
            }
        elif (
            self.patience is not None
            and engine.iteration - max(self.best_iteration, self.start) >= self.patience
        ):
            self.stopped_at = engine.iteration
            engine.should_stop = True

    def offer_start(self, value: float, engine: Engine, margin: float = 0.0) -> None:
        """The networks the run starts from (a converged supervised stage) as the first candidate, iteration 0:
        an iteration must then beat them by more than `margin` to be kept, and a continuation that only loses
        ends where it began. The margin is the metric's sampling error: on a small validation split the best
        of many noisy checks beats the start by luck alone, and keeping it loses on new data."""
        if self.best_value is None and not math.isnan(value):
            self.best_value, self.best_iteration, self.start_margin = value, 0, margin
            self.best_state = {
                name: copy.deepcopy(network.state_dict()) for name, network in self._kept(engine).items()
            }

    def _kept(self, engine: Engine) -> dict[str, torch.nn.Module]:
        networks = engine.networks
        return networks if self.keep is None else {k: networks[k] for k in self.keep}

    def on_end(self, engine: Engine) -> None:
        if self.restore and self.best_state:
            for name, network in self._kept(engine).items():
                network.load_state_dict(self.best_state[name])

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
            "best_state": self.best_state,
            "stopped_at": self.stopped_at,
            "start_margin": self.start_margin,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_iteration = state["best_value"], int(state["best_iteration"])
        self.best_state, self.stopped_at = state["best_state"], state["stopped_at"]
        # Checkpoints from before the margin lack it.
        self.start_margin = float(state.get("start_margin", 0.0))
