"""`GET /models/{name}/{version}/card`: a version's model card as JSON, Markdown or HTML.

The card is read by whoever sees the scores (the live page shows it), so it takes the scoring token, not the
control token: open unless USQA_REQUIRE_TOKEN_FOR_SCORING, like /assess. /readyz already names the served
model to anyone.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from usqa.service.api.deps import ScoringAuth, ServiceDep
from usqa.service.api.errors import ApiError
from usqa.service.api.schemas import ErrorResponse
from usqa.service.registry import IntegrityError, ModelRegistry, RegistryError
from usqa.service.registry.card import ModelCard, read_card
from usqa.service.registry.card_render import card_html, card_markdown

router = APIRouter(prefix="/models", tags=["models"], dependencies=[ScoringAuth])

CardFormat = Literal["json", "markdown", "html"]
MARKDOWN_MEDIA_TYPE = "text/markdown; charset=utf-8"
# Media types a client may ask for in Accept, and the format each gets; anything else gets JSON.
ACCEPTED: dict[str, CardFormat] = {
    "application/json": "json",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The card: JSON by default; Markdown or HTML by `?format=` or `Accept`",
        "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    },
    401: {"model": ErrorResponse, "description": "Bearer token missing or wrong (when scoring needs one)"},
    404: {"model": ErrorResponse, "description": "No such model, version or alias"},
    409: {"model": ErrorResponse, "description": "The version's card does not match its manifest (tampered)"},
}


def card_format(accept: str | None, requested: CardFormat | None) -> CardFormat:
    """`?format=` wins; else the Accept media type with the highest q that has a format; else JSON."""
    if requested is not None:
        return requested
    best: CardFormat = "json"
    best_q = 0.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        chosen = ACCEPTED.get(media.lower())
        if chosen is not None and q > best_q:
            best, best_q = chosen, q
    return best


@router.get("/{name}/{version}/card", response_model=ModelCard, responses=ERRORS)
async def model_card(
    name: str,
    version: str,
    request: Request,
    service: ServiceDep,
    format: Annotated[CardFormat | None, Query(description="json, markdown or html (else by Accept)")] = None,
) -> Response:
    """A version's model card (`version`: a number, `latest` or an alias such as `champion`)."""
    registry = ModelRegistry(service.settings.registry)
    try:
        card = await asyncio.to_thread(read_card, registry, name, version)
    except IntegrityError as exc:
        raise ApiError(409, "integrity_error", str(exc)) from exc
    except RegistryError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    vary = {"Vary": "Accept"}
    chosen = card_format(request.headers.get("accept"), format)
    if chosen == "markdown":
        return Response(card_markdown(card), media_type=MARKDOWN_MEDIA_TYPE, headers=vary)
    if chosen == "html":
        return HTMLResponse(card_html(card), headers=vary)
    return JSONResponse(card.model_dump(mode="json"), headers=vary)
