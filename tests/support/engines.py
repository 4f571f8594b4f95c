"""A scripted engine for tests of the engine family: one tiny network whose weight is the iteration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from usqa.trainer.engine.base import Callback, Engine, Logs


class ScriptedEngine(Engine):
    """Iteration k sets the network's weight to k and logs `metric = values[k - 1]`."""

    unit = "step"

    def __init__(self, values: Sequence[float], callbacks: Sequence[Callback] = ()) -> None:
        super().__init__("scripted", len(values), callbacks)
        self.values = list(values)
        self.network = nn.Linear(1, 1, bias=False)

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"network": self.network}

    def run_iteration(self) -> Logs:
        with torch.no_grad():
            self.network.weight.fill_(self.iteration + 1)
        return {"metric": self.values[self.iteration], "loss": 1.0}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.iteration, "network": self.network.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["step"])
        self.network.load_state_dict(state["network"])
