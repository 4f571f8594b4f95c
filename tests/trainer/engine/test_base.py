"""The one loop and event vocabulary of every engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.support.engines import ScriptedEngine
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.engine.callbacks import EXCEPTION_KEY, Checkpointer, MetricsLog


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_start(self, engine: Engine) -> None:
        self.events.append(("start", engine.iteration))

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        self.events.append(("iteration", engine.iteration))

    def on_end(self, engine: Engine) -> None:
        self.events.append(("end", engine.iteration))


def test_events_come_in_order_and_a_resumed_engine_runs_only_the_rest() -> None:
    recorder = Recorder()
    engine = ScriptedEngine([0.1, 0.2, 0.3], [recorder])
    engine.load_state_dict(ScriptedEngine([0.0]).state_dict() | {"step": 1})
    engine.run()
    assert recorder.events == [("start", 1), ("iteration", 2), ("iteration", 3), ("end", 3)]
    assert engine.last_logs == {"metric": 0.3, "loss": 1.0} and engine.eta_s == 0.0


def test_a_callback_stops_the_run_after_the_current_iteration() -> None:
    class StopAtTwo(Callback):
        def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
            engine.should_stop = engine.iteration == 2

    recorder = Recorder()
    engine = ScriptedEngine([0.1] * 5, [StopAtTwo(), recorder])
    engine.run()
    assert engine.iteration == 2 and recorder.events[-1] == ("end", 2)


class CrashingEngine(ScriptedEngine):
    """A scripted engine whose iteration `crash_at` (1-based) raises before it changes anything."""

    def __init__(self, values: list[float], crash_at: int | None, callbacks: list[Callback]) -> None:
        super().__init__(values, callbacks)
        self.crash_at = crash_at

    def run_iteration(self) -> Logs:
        if self.iteration + 1 == self.crash_at:
            raise RuntimeError("the data loader lost its file")
        return super().run_iteration()


def test_a_crashed_run_leaves_its_checkpoint_and_last_log_line_and_resumes(tmp_path: Path) -> None:
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    checkpoint, log = tmp_path / "checkpoint.pt", tmp_path / "metrics.jsonl"

    def callbacks() -> list[Callback]:
        # every 3: without the exception event, a crash at iteration 6 would leave iteration 3's checkpoint
        return [Checkpointer(checkpoint, every=3, payload=lambda e: e.state_dict()), MetricsLog(log, every=3)]

    recorder = Recorder()
    crashed = CrashingEngine(values, crash_at=6, callbacks=[*callbacks(), recorder])
    with pytest.raises(RuntimeError, match="lost its file"):
        crashed.run()
    assert crashed.iteration == 5 and recorder.events[-1] == ("iteration", 5)  # no on_end after a crash
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 5 and float(state["network"]["weight"]) == 5.0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["step"] for row in rows] == [3, 5]
    assert rows[-1] == {
        "step": 5,
        "stage": "scripted",
        "metric": 0.5,
        "loss": 1.0,
        EXCEPTION_KEY: "RuntimeError: the data loader lost its file",
    }

    resumed = CrashingEngine(values, crash_at=None, callbacks=callbacks())
    resumed.load_state_dict(torch.load(checkpoint, weights_only=True))
    resumed.run()
    uninterrupted_log = tmp_path / "uninterrupted.jsonl"
    uninterrupted = ScriptedEngine(values, [MetricsLog(uninterrupted_log, every=3)])
    uninterrupted.run()
    assert resumed.iteration == 7 and float(resumed.network.weight.detach()) == float(
        uninterrupted.network.weight.detach()
    )
    # the crash line goes at the resume: the log reads as the uninterrupted run's
    assert log.read_text() == uninterrupted_log.read_text()
    assert torch.load(checkpoint, weights_only=True)["step"] == 7


def test_a_failing_exception_handler_does_not_hide_the_error_or_the_other_handlers() -> None:
    class Broken(Callback):
        def on_exception(self, engine: Engine, error: Exception) -> None:
            raise OSError("disk full")

    class Seen(Callback):
        def __init__(self) -> None:
            self.errors: list[str] = []

        def on_exception(self, engine: Engine, error: Exception) -> None:
            self.errors.append(str(error))

    seen = Seen()
    with pytest.raises(RuntimeError, match="lost its file") as caught:
        CrashingEngine([0.1, 0.2], crash_at=2, callbacks=[Broken(), seen]).run()
    assert seen.errors == ["the data loader lost its file"]
    assert caught.value.__notes__ == ["Broken.on_exception failed too: OSError: disk full"]
