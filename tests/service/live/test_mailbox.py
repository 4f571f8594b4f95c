from __future__ import annotations

import asyncio

import pytest

from usqa.service.live.mailbox import LatestFrameSlot


def test_the_newest_frame_wins_and_the_displaced_one_is_reported() -> None:
    async def scenario() -> None:
        slot: LatestFrameSlot[int] = LatestFrameSlot()
        assert slot.put(1) is None
        assert slot.put(2) == 1
        assert slot.put(3) == 2
        assert await slot.get() == 3
        assert slot.put(4) is None  # the slot was emptied by get

    asyncio.run(scenario())


def test_get_waits_for_a_frame() -> None:
    async def scenario() -> None:
        slot: LatestFrameSlot[str] = LatestFrameSlot()
        waiter = asyncio.create_task(slot.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        slot.put("frame")
        assert await asyncio.wait_for(waiter, 1.0) == "frame"

    asyncio.run(scenario())


def test_close_drains_then_ends() -> None:
    async def scenario() -> None:
        slot: LatestFrameSlot[int] = LatestFrameSlot()
        slot.put(7)
        slot.close()
        assert await slot.get() == 7
        assert await slot.get() is None
        with pytest.raises(RuntimeError):
            slot.put(8)
        idle: LatestFrameSlot[int] = LatestFrameSlot()
        waiter = asyncio.create_task(idle.get())
        await asyncio.sleep(0.01)
        idle.close()
        assert await asyncio.wait_for(waiter, 1.0) is None

    asyncio.run(scenario())
