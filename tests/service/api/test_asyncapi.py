from __future__ import annotations

import asyncio
from typing import Any

import httpx

from usqa.client.stream import stream_frames
from usqa.service.api.asyncapi import ASYNCAPI_VERSION, FRAME_MESSAGE
from usqa.service.api.scan_messages import CLIENT_MESSAGES, SERVER_MESSAGES

from ..conftest import LiveServer, frame_of_level


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_document_is_served_beside_openapi_and_every_reference_resolves(
    fixture_server: LiveServer,
) -> None:
    document = httpx.get(f"{fixture_server.http}/asyncapi.json").json()
    assert document["asyncapi"] == ASYNCAPI_VERSION
    assert document["channels"]["scan"]["address"] == "/ws/scan"
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref
    messages = document["components"]["messages"]
    assert set(messages) == {*SERVER_MESSAGES, *CLIENT_MESSAGES, FRAME_MESSAGE}
    assert "/asyncapi.json" in httpx.get(f"{fixture_server.http}/openapi.json").json()["paths"]


def test_every_message_type_the_server_sends_is_in_the_document(fixture_server: LiveServer) -> None:
    document = httpx.get(f"{fixture_server.http}/asyncapi.json").json()
    sent = {ref.rsplit("/", 1)[1] for ref in refs(document["operations"]["sendFeedback"]["messages"])}
    seen: set[str] = set()
    frames = [frame_of_level(120, (32, 32), seed=i) for i in range(4)]

    async def run() -> None:
        import json

        import websockets

        async with websockets.connect(fixture_server.ws) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            await ws.send(b"not an image")
            await ws.send(json.dumps({"type": "end"}))
            async for text in ws:
                seen.add(json.loads(text)["type"])

    asyncio.run(run())
    asyncio.run(stream_frames(fixture_server.ws, frames, fps=30, on_message=lambda m, _: seen.add(m["type"])))
    assert {"ready", "configured", "error", "result", "summary"} <= seen
    assert seen <= sent and set(SERVER_MESSAGES) == sent
