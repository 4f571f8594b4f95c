"""Registry changes reach the service two ways: Redis announcements (at once) and polling (the fallback).

Announcements on `usqa:registry` for a served model trigger a refresh that retries even a version that
failed before (someone may have fixed it). Polling reads the alias every `poll_s` seconds and skips a
version that already failed, so a tampered version is reported once rather than reloaded forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from usqa.service.inference.holder import ModelHolder
from usqa.service.registry import REGISTRY_CHANNEL, Announcement

log = logging.getLogger(__name__)

# Reconnection backoff after Redis fails, doubling from the first value up to the second (seconds).
RECONNECT_BACKOFF_S = (0.5, 30.0)
# How long one pub/sub read waits before the loop checks for shutdown.
LISTEN_TIMEOUT_S = 1.0


class RegistryWatcher:
    """Background tasks that keep each holder (one per served model) on the version its alias names."""

    def __init__(
        self,
        holders: ModelHolder | Sequence[ModelHolder],
        *,
        redis_url: str | None,
        poll_s: float,
        channel: str = REGISTRY_CHANNEL,
    ) -> None:
        self.holders = [holders] if isinstance(holders, ModelHolder) else list(holders)
        self.redis_url = redis_url
        self.poll_s = poll_s
        self.channel = channel
        self.subscribed = False
        self.announcements = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed_event = asyncio.Event()

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll(), name="usqa-registry-poll"))
        if self.redis_url:
            self._tasks.append(asyncio.create_task(self._listen(self.redis_url), name="usqa-registry-listen"))

    async def wait_subscribed(self, timeout_s: float) -> bool:
        """True once the Redis subscription is live (tests and start-up logs wait on it)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed_event.wait(), timeout_s)
        return self.subscribed

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            for holder in self.holders:
                try:
                    await holder.refresh("poll", retry_failed=False)
                except Exception:  # the poller must outlive any one bad read of the registry
                    log.exception("registry poll failed for %s", holder.name)

    async def _listen(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        delay = RECONNECT_BACKOFF_S[0]
        while True:
            client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2.0)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                self._subscribed_event.set()
                log.info("listening for registry announcements on %s", self.channel)
                delay = RECONNECT_BACKOFF_S[0]
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                    if message is not None and message.get("type") == "message":
                        await self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarted: keep polling, reconnect with backoff
                if self.subscribed:
                    log.warning(
                        "lost the registry announcement channel (%s); polling every %.0f s", exc, self.poll_s
                    )
                else:
                    log.warning(
                        "cannot subscribe to registry announcements (%s); retrying in %.1f s", exc, delay
                    )
                self.subscribed = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_BACKOFF_S[1])
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()

    async def _on_message(self, data: bytes | str) -> None:
        try:
            announcement = Announcement.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed registry announcement: %s", exc)
            return
        holder = next((h for h in self.holders if h.name == announcement.name), None)
        if holder is None:
            return
        self.announcements += 1
        log.info(
            "registry announcement: %s %s version %d (alias %s)",
            announcement.event,
            announcement.name,
            announcement.version,
            announcement.alias,
        )
        await holder.refresh(f"announcement:{announcement.event}")
