"""usqa.client's control calls against a real service: a model's versions, promote and roll back, sync and async."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from usqa.client import AsyncClient, Client, UsqaError
from usqa.service.api import create_app
from usqa.service.registry import CHAMPION, ModelRegistry

from ..service.conftest import MODEL_NAME, make_settings, republish, serve, served_version

TOKEN = "client-control-token"


def test_the_client_lists_promotes_and_rolls_back(registry_root: Path) -> None:
    old = served_version(registry_root)
    new = republish(ModelRegistry(registry_root), MODEL_NAME)
    with serve(create_app(make_settings(registry_root, api_token=TOKEN))) as live:
        with Client(live.http, token=TOKEN) as usqa:
            listing = usqa.model(MODEL_NAME)
            assert (listing["aliases"], listing["served_version"]) == ({CHAMPION: old}, old)
            promoted = usqa.promote(MODEL_NAME, new)
            assert (promoted["version"], promoted["served_version"]) == (new, new)

        async def roll_back() -> dict[str, object]:
            async with AsyncClient(live.http, token=TOKEN) as usqa:
                return await usqa.rollback(MODEL_NAME)

        rolled = asyncio.run(roll_back())
        assert (rolled["version"], rolled["served_version"]) == (old, old)
        with Client(live.http, token="wrong", retries=0) as usqa, pytest.raises(UsqaError) as refused:
            usqa.promote(MODEL_NAME, new)
    assert refused.value.status == 401
