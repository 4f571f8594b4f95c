"""The one loop and event vocabulary of every engine."""

from __future__ import annotations

from tests.support.engines import ScriptedEngine
from usqa.trainer.engine.base import Callback, Engine, Logs


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
