"""Several exam protocols served at once (issue #27): one `ModelHolder` per served model name.

The default model (`USQA_MODEL_NAME`) answers callers that name none; `USQA_MODEL_NAMES` adds others, and
`*` there means every model of the registry whose alias (`USQA_MODEL_ALIAS`, champion) resolves when the
service starts. Each holder keeps its own version, hot swap and failures; the registry watcher refreshes
them all. A frame that one model calls out of scope is offered to the others' scope gates (`looks_like`),
so the answer can say which exam it belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from usqa.contracts.protocol import Verdict
from usqa.service.inference.holder import Loader, ModelHolder, ModelListener
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import ScoredFrame
from usqa.service.registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)

ALL_MODELS = "*"
# A stream asks the other models what its out-of-scope frames look like at most this often (StreamHints).
HINT_PERIOD_S = 1.0
MSG_NOT_SERVED = "model {name!r} is not served here; served: {served}"


class ModelNotServedError(LookupError):
    pass


def served_names(registry: ModelRegistry, default: str, extra: Sequence[str], alias: str) -> list[str]:
    """The default name first, then `extra` (with `*` expanded to every name whose alias resolves)."""
    names = [default]
    for entry in extra:
        candidates = registry.names() if entry == ALL_MODELS else [entry]
        for name in candidates:
            if name in names:
                continue
            if entry == ALL_MODELS:
                try:
                    registry.resolve(name, alias)
                except RegistryError:
                    continue  # no champion: not an exam this service offers
            names.append(name)
    return names


class ServedModels:
    """The holders by name, the default first."""

    def __init__(self, registry: ModelRegistry, names: Sequence[str], alias: str, loader: Loader) -> None:
        self.holders: dict[str, ModelHolder] = {n: ModelHolder(registry, n, alias, loader) for n in names}
        self.default = self.holders[names[0]]

    def __iter__(self) -> Iterator[ModelHolder]:
        return iter(self.holders.values())

    def __len__(self) -> int:
        return len(self.holders)

    @property
    def names(self) -> list[str]:
        return list(self.holders)

    def holder(self, name: str | None) -> ModelHolder:
        """The holder of `name` (None: the default), or ModelNotServedError with the served names."""
        if name is None:
            return self.default
        holder = self.holders.get(name)
        if holder is None:
            raise ModelNotServedError(MSG_NOT_SERVED.format(name=name[:64], served=", ".join(self.holders)))
        return holder

    def subscribe(self, listener: ModelListener) -> Callable[[], None]:
        unsubscribers = [h.subscribe(listener) for h in self.holders.values()]

        def unsubscribe() -> None:
            for each in unsubscribers:
                each()

        return unsubscribe

    async def refresh(self, trigger: str) -> None:
        for holder in self.holders.values():
            outcome = await holder.refresh(trigger)
            if outcome.status == "failed":
                log.error(
                    "%s: not served yet (%s); the registry is polled until it loads",
                    holder.name,
                    outcome.reason,
                )

    def others(self, model: LoadedModel) -> list[LoadedModel]:
        """The other served models whose frame specification matches `model`'s (they read the same input)."""
        return [
            m
            for h in self.holders.values()
            if h.name != model.name and (m := h.current) is not None and m.spec == model.spec
        ]

    async def looks_like(self, model: LoadedModel, pixels: np.ndarray) -> str | None:
        """The first other served model whose scope gate admits this prepared frame (uint8 [S, S]), if any."""
        for other in self.others(model):
            threshold = other.scale.ood_threshold
            if threshold is None:
                continue  # a version without a scope gate admits everything: it says nothing here
            outputs = await asyncio.to_thread(other.run, pixels[None])
            if outputs.ood_distance is not None and float(outputs.ood_distance[0]) <= threshold:
                return other.name
        return None

    async def hints(self, model: LoadedModel, frames: Sequence[ScoredFrame]) -> dict[int, str]:
        """For each out-of-scope frame that another served exam's model takes: its index -> that model's name.
        Costs a run of the other models for out-of-scope frames only, and nothing with one model served."""
        if len(self.holders) < 2:
            return {}
        found = {}
        for frame in frames:
            if frame.verdict.verdict == Verdict.OUT_OF_SCOPE and frame.pixels is not None:
                name = await self.looks_like(model, frame.pixels)
                if name is not None:
                    found[frame.index] = name
        return found


class StreamHints:
    """The looks-like hint for one stream's out-of-scope frames. The first such frame for a model waits for the
    other models' answer; after that the answer is repeated, and asked again in the background at most once a
    `period_s`, after the frame that found it stale has been answered. A stream that stays out of scope (the wrong
    exam picked, a capture card's whole screen) would otherwise pay one more model run on every frame, inside
    that frame's latency: with two exams served, 4 x 30 fps of 640x480 screens took 44 % more time in p99 than
    with one (docs/performance.md, 6 Dec 2026)."""

    def __init__(
        self,
        models: ServedModels,
        period_s: float = HINT_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models, self.period_s, self.clock = models, period_s, clock
        self._asked: tuple[LoadedModel, float] | None = None
        self._answer: str | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def hint(self, model: LoadedModel, frame: ScoredFrame) -> str | None:
        if frame.verdict.verdict != Verdict.OUT_OF_SCOPE or frame.pixels is None:
            return None
        now = self.clock()
        if self._asked is None or self._asked[0] is not model:
            self._answer = await self.models.looks_like(model, frame.pixels)
            self._asked = (model, now)
        elif now - self._asked[1] >= self.period_s and (self._refresh is None or self._refresh.done()):
            self._asked = (model, now)
            self._refresh = asyncio.get_running_loop().create_task(self._ask(model, frame.pixels))
        return self._answer

    async def _ask(self, model: LoadedModel, pixels: np.ndarray) -> None:
        await asyncio.sleep(0)  # after the frame that found the answer stale is on its way
        try:
            answer = await self.models.looks_like(model, pixels)
        except Exception:  # a hint is advice: a failure keeps the last answer
            log.exception("asking the other served models about an out-of-scope frame failed")
            return
        if self._asked is not None and self._asked[0] is model:
            self._answer = answer
