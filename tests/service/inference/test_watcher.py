from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import redis

from usqa.service.inference.holder import ModelHolder
from usqa.service.inference.watcher import RegistryWatcher
from usqa.service.registry import CHAMPION, ModelRegistry, RedisAnnouncer

from ..conftest import FIXTURE_MODEL_NAME, republish
from .test_holder import loader

DEADLINE_S = 10.0


async def _until(condition: object, timeout_s: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_an_announcement_on_redis_triggers_the_swap(registry_root: Path, redis_url: str) -> None:
    channel = f"usqa:registry:test-{uuid.uuid4().hex}"
    holder = ModelHolder(ModelRegistry(registry_root), FIXTURE_MODEL_NAME, CHAMPION, loader)
    announcer = RedisAnnouncer(redis_url, channel=channel)
    publisher = ModelRegistry(registry_root, announcer=announcer)

    async def scenario() -> None:
        await holder.refresh("startup")
        watcher = RegistryWatcher(holder, redis_url=redis_url, poll_s=3600, channel=channel)
        watcher.start()
        try:
            assert await watcher.wait_subscribed(DEADLINE_S)
            redis.Redis.from_url(redis_url).publish(channel, b"{not json")  # ignored, not fatal
            republish(publisher, FIXTURE_MODEL_NAME, alias=CHAMPION)  # announces "published" as champion
            await _until(lambda: holder.current is not None and holder.current.number == 2)
            assert watcher.announcements >= 1
            assert holder.last_swap is not None and holder.last_swap.trigger == "announcement:published"
        finally:
            await watcher.stop()

    try:
        asyncio.run(scenario())
    finally:
        announcer.close()


def test_polling_finds_a_promotion_without_redis(registry_root: Path) -> None:
    holder = ModelHolder(ModelRegistry(registry_root), FIXTURE_MODEL_NAME, CHAMPION, loader)
    registry = ModelRegistry(registry_root)

    async def scenario() -> None:
        await holder.refresh("startup")
        watcher = RegistryWatcher(holder, redis_url=None, poll_s=0.05)
        watcher.start()
        try:
            registry.promote(FIXTURE_MODEL_NAME, republish(registry, FIXTURE_MODEL_NAME))
            await _until(lambda: holder.current is not None and holder.current.number == 2)
            assert holder.last_swap is not None and holder.last_swap.trigger == "poll"
        finally:
            await watcher.stop()

    asyncio.run(scenario())


def test_an_unreachable_redis_leaves_polling_in_charge(registry_root: Path) -> None:
    holder = ModelHolder(ModelRegistry(registry_root), FIXTURE_MODEL_NAME, CHAMPION, loader)

    async def scenario() -> None:
        watcher = RegistryWatcher(holder, redis_url="redis://127.0.0.1:1/0", poll_s=0.05)
        watcher.start()
        try:
            assert not await watcher.wait_subscribed(0.3)
            await _until(lambda: holder.current is not None)  # the poller loaded the champion
        finally:
            await watcher.stop()

    asyncio.run(scenario())
