from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.served import cpu_model
from usqa.service.inference.holder import ModelHolder, SwapOutcome
from usqa.service.inference.model import LoadedModel
from usqa.service.registry import CHAMPION, ModelRegistry, ModelVersion
from usqa.service.registry.store import MSG_TAMPERED

from ..conftest import FIXTURE_MODEL_NAME, republish, tamper


def loader(version: ModelVersion) -> LoadedModel:
    return cpu_model(version)


def make_holder(root: Path) -> tuple[ModelHolder, list[SwapOutcome]]:
    holder = ModelHolder(ModelRegistry(root), FIXTURE_MODEL_NAME, CHAMPION, loader)
    events: list[SwapOutcome] = []
    holder.subscribe(lambda outcome, model: events.append(outcome))
    return holder, events


def test_refresh_loads_swaps_and_reports(registry_root: Path) -> None:
    holder, events = make_holder(registry_root)
    registry = ModelRegistry(registry_root)

    async def scenario() -> None:
        first = await holder.refresh("startup")
        assert (first.status, first.version, first.previous_version) == ("swapped", 1, None)
        old = holder.current
        assert old is not None and old.number == 1
        assert (await holder.refresh("poll")).status == "unchanged"
        registry.promote(FIXTURE_MODEL_NAME, republish(registry, FIXTURE_MODEL_NAME))
        second = await holder.refresh("announcement:promoted")
        assert (second.status, second.version, second.previous_version) == ("swapped", 2, 1)
        assert holder.current is not None and holder.current.number == 2
        # The old version object still works for requests that took it before the swap.
        assert old.number == 1 and old.controller is not None

    asyncio.run(scenario())
    assert [e.status for e in events] == ["swapped", "swapped"]
    assert holder.last_swap is not None and holder.last_swap.trigger == "announcement:promoted"


def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(registry_root: Path) -> None:
    holder, events = make_holder(registry_root)
    registry = ModelRegistry(registry_root)

    async def scenario() -> None:
        await holder.refresh("startup")
        version = republish(registry, FIXTURE_MODEL_NAME, alias=CHAMPION)
        tamper(registry, FIXTURE_MODEL_NAME, version)
        outcome = await holder.refresh("announcement:published")
        assert outcome.status == "failed" and outcome.version == version
        assert outcome.reason == MSG_TAMPERED.format(
            name=FIXTURE_MODEL_NAME, version=version, file="controller.onnx"
        )
        assert holder.current is not None and holder.current.number == 1
        assert holder.last_failure == outcome
        # Polling does not reload a version that already failed; an announcement retries it.
        assert await holder.refresh("poll", retry_failed=False) is outcome
        assert (await holder.refresh("announcement:published")).status == "failed"

    asyncio.run(scenario())
    assert [e.status for e in events] == ["swapped", "failed", "failed"]


def test_a_registry_without_the_model_leaves_nothing_served(tmp_path: Path) -> None:
    holder, _ = make_holder(tmp_path / "empty")
    outcome = asyncio.run(holder.refresh("startup"))
    assert outcome.status == "failed" and outcome.version is None
    assert outcome.reason is not None and "no model named" in outcome.reason
    assert holder.current is None
