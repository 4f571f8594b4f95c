"""`train()` and the run folder: a resumed run continues exactly like an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contracts.training import ALGOS, preset
from trainer.engine.base import Callback, Engine, Logs
from trainer.run import CHECKPOINT_FILE, METRICS_FILE, train


class StopAfter(Callback):
    """Simulates a crash after `episode` (the checkpointer has already written that episode)."""

    def __init__(self, episode: int) -> None:
        self.episode = episode

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if logs["stage"] == "amenability" and logs["episode"] == self.episode:
            raise KeyboardInterrupt


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_continues_exactly_like_an_uninterrupted_run(
    algo: str, tiny_data: Path, tmp_path: Path
) -> None:
    config = preset("debug", "classify", "weighted", algo)
    whole = train(config, tiny_data, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data, tmp_path / "cut", [StopAfter(2)], progress=False)
    assert torch.load(tmp_path / "cut" / CHECKPOINT_FILE, weights_only=False)["engine"]["episode"] == 2
    resumed = train(config, tiny_data, tmp_path / "cut", resume=True, progress=False)
    for a, b in ((whole.controller, resumed.controller), (whole.predictor, resumed.predictor)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    lines = (tmp_path / "cut" / METRICS_FILE).read_text().splitlines()
    assert len(lines) == len((tmp_path / "whole" / METRICS_FILE).read_text().splitlines())
    # the log of the resumed run is the uninterrupted one's, up to the wall times
    timing = {"elapsed_s", "eta_s"}
    for cut, straight in zip(
        lines, (tmp_path / "whole" / METRICS_FILE).read_text().splitlines(), strict=True
    ):
        a, b = json.loads(cut), json.loads(straight)
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }
