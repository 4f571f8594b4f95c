"""The served model and its hot swap: load and warm the new version beside the old, then switch at once.

Every request takes `holder.current` once, when it starts, and keeps that version to its end, so a swap
never changes a model under a running request; the old version is released when its last request ends.
A version that fails to load (tampered files, a broken graph, no threshold for the operating point) is
refused: the old version keeps serving and the failure is kept for /readyz, the log and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from usqa.service.inference.model import LoadedModel, ModelLoadError
from usqa.service.inference.providers import ProviderError
from usqa.service.registry import ModelRegistry, ModelVersion, RegistryError, explain

log = logging.getLogger(__name__)

Loader = Callable[[ModelVersion], LoadedModel]
SwapStatus = Literal["swapped", "unchanged", "failed"]

MSG_NO_MODEL_LOADED = "no model is loaded yet: {reason}"


@dataclass(frozen=True)
class SwapOutcome:
    status: SwapStatus
    name: str
    version: int | None  # the version asked for (None when the alias could not be resolved)
    previous_version: int | None
    trigger: str
    reason: str | None = None
    at: float = 0.0


ModelListener = Callable[[SwapOutcome, LoadedModel | None], None]


class ModelHolder:
    """Holds the served `LoadedModel` and swaps it when the registry alias moves."""

    def __init__(self, registry: ModelRegistry, name: str, alias: str, loader: Loader) -> None:
        self.registry = registry
        self.name = name
        self.alias = alias
        self._loader = loader
        self._current: LoadedModel | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[ModelListener] = []
        self.last_failure: SwapOutcome | None = None
        self.last_swap: SwapOutcome | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def subscribe(self, listener: ModelListener) -> Callable[[], None]:
        """Call `listener(outcome, model)` on the event loop after every swap or failed swap."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def refresh(self, trigger: str, *, retry_failed: bool = True) -> SwapOutcome:
        """Serve the version the alias names now; `retry_failed=False` skips a version that failed before."""
        async with self._lock:
            previous = self._current
            previous_version = None if previous is None else previous.number
            try:
                version = await asyncio.to_thread(self.registry.resolve, self.name, self.alias)
            except RegistryError as exc:
                return self._failed(None, previous_version, trigger, str(exc), detail=explain(exc))
            if previous is not None and previous.number == version:
                return SwapOutcome("unchanged", self.name, version, previous_version, trigger, at=time.time())
            if not retry_failed and self.last_failure is not None and self.last_failure.version == version:
                return self.last_failure
            try:
                loaded = await asyncio.to_thread(self._load, version)
            except (RegistryError, ModelLoadError, ProviderError) as exc:
                return self._failed(version, previous_version, trigger, str(exc))
            except Exception as exc:  # anything else in a new version must not take the old one down
                log.exception("unexpected failure loading %s version %d", self.name, version)
                return self._failed(version, previous_version, trigger, f"{type(exc).__name__}: {exc}")
            self._current = loaded  # the swap: one reference assignment, seen by the next request
            self.last_failure = None
            outcome = SwapOutcome("swapped", self.name, version, previous_version, trigger, at=time.time())
            self.last_swap = outcome
            log.info(
                "serving %s version %d (was %s), trigger: %s",
                self.name,
                version,
                "nothing" if previous_version is None else f"version {previous_version}",
                trigger,
            )
            self._notify(outcome, loaded)
            return outcome

    def _load(self, version: int) -> LoadedModel:
        return self._loader(self.registry.load(self.name, version))

    def _failed(
        self,
        version: int | None,
        previous: int | None,
        trigger: str,
        reason: str,
        *,
        detail: str | None = None,
    ) -> SwapOutcome:
        # `reason` reaches clients (/readyz); `detail` (where a missing model was looked for) only the log.
        outcome = SwapOutcome("failed", self.name, version, previous, trigger, reason=reason, at=time.time())
        self.last_failure = outcome
        keeps = "nothing is served" if previous is None else f"version {previous} keeps serving"
        log.error("refused %s version %s (%s): %s; %s", self.name, version, trigger, detail or reason, keeps)
        self._notify(outcome, self._current)
        return outcome

    def _notify(self, outcome: SwapOutcome, model: LoadedModel | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(outcome, model)
            except Exception:  # one broken listener must not stop the others hearing of the swap
                log.exception("model listener failed")
