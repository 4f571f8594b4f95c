"""GET /asyncapi.json: the /ws/scan protocol, beside /openapi.json (which cannot describe WebSockets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from usqa.service.api.asyncapi import asyncapi_document

router = APIRouter(tags=["operations"])


@router.get("/asyncapi.json")
async def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the /ws/scan WebSocket protocol."""
    return asyncapi_document()
