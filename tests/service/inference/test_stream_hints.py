"""A stream's looks-like hint (usqa/service/inference/served_models.py StreamHints): asked of the other models at
most once a period, repeated in between, asked again for another model, never for an in-scope frame."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from usqa.contracts.protocol import Verdict
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoredFrame
from usqa.service.inference.served_models import ServedModels, StreamHints


class Models:
    """Answers `looks_like` from a script, counting the questions."""

    def __init__(self, answers: list[str | None]) -> None:
        self.answers, self.asked = answers, 0

    async def looks_like(self, model: Any, pixels: np.ndarray) -> str | None:
        self.asked += 1
        return self.answers.pop(0)


def frame(verdict: Verdict) -> ScoredFrame:
    return cast(
        ScoredFrame, SimpleNamespace(verdict=SimpleNamespace(verdict=verdict), pixels=np.zeros((4, 4)))
    )


def test_a_stream_asks_the_other_models_at_once_then_in_the_background_at_most_once_a_period() -> None:
    now = [0.0]
    models = Models(["usqa-thyroid", None, "usqa-thyroid"])
    hints = StreamHints(cast(ServedModels, models), period_s=1.0, clock=lambda: now[0])
    prostate, other = cast(LoadedModel, object()), cast(LoadedModel, object())

    async def ask(model: LoadedModel, verdict: Verdict = Verdict.OUT_OF_SCOPE) -> str | None:
        return await hints.hint(model, frame(verdict))

    async def scenario() -> list[str | None]:
        found = [await ask(prostate)]  # the first out-of-scope frame waits for the answer
        now[0] = 0.5
        found += [await ask(prostate), await ask(prostate, Verdict.GOOD)]  # repeated; in scope: no hint
        now[0] = 1.2
        found.append(await ask(prostate))  # stale: this frame keeps the last answer, a refresh starts
        await asyncio.sleep(0.01)
        found.append(await ask(prostate))  # the refreshed answer
        found.append(await ask(other))  # another exam picked: asked at once
        return found

    assert asyncio.run(scenario()) == [
        "usqa-thyroid",
        "usqa-thyroid",
        None,
        "usqa-thyroid",
        None,
        "usqa-thyroid",
    ]
    assert models.asked == 3
