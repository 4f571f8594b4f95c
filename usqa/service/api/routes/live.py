"""The live page at /, the protocol words its scripts read, and the cines it plays (the built-in demo, or an
uploaded DICOM or video)."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from functools import cache, partial
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from usqa.contracts.protocol import page_constants
from usqa.service.api.cine import demo_cine, unpack_cine
from usqa.service.api.deps import ScoringAuth, ServiceDep
from usqa.service.api.errors import ApiError, from_frame_error
from usqa.service.api.request_body import MULTIPART, file_part, media_type_of, read_body
from usqa.service.api.routes.assess import ERRORS
from usqa.service.api.schemas import CineFrames
from usqa.service.frames import FrameError
from usqa.service.frames.lane import DecodeLaneFullError

router = APIRouter(tags=["live page"])

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
PROTOCOL_SCRIPT = "/protocol.js"
# Demo cines are a pure function of (preset, frames): the last few are kept (each is up to a few MB, and
# the length is the client's choice, so the cache must not grow with every length asked for).
DEMO_CACHE: OrderedDict[tuple[str, int, int, str], CineFrames] = OrderedDict()
DEMO_CACHE_ENTRIES = 4


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@cache
def protocol_script() -> str:
    """`USQA_PROTOCOL` for the page's scripts: the /ws/scan words of usqa/contracts/protocol.py, as JSON."""
    constants = json.dumps(page_constants(), indent=2)
    return f'"use strict";\n// Generated from usqa/contracts/protocol.py.\nconst USQA_PROTOCOL = Object.freeze({constants});\n'


@router.get(PROTOCOL_SCRIPT, include_in_schema=False)
async def protocol() -> Response:
    """The protocol's words, loaded by the page before its own scripts, so they never re-type them."""
    return Response(protocol_script(), media_type="text/javascript")


@router.get("/cine/demo", response_model=CineFrames, dependencies=[ScoringAuth])
async def demo(service: ServiceDep, frames: Annotated[int | None, Query(gt=0, le=2000)] = None) -> CineFrames:
    """The built-in simulated cine (rendered once per length, then cached)."""
    settings = service.settings
    key = (settings.demo_preset, frames or settings.demo_frames, 0, settings.demo_mix)
    if key in DEMO_CACHE:
        DEMO_CACHE.move_to_end(key)
        return DEMO_CACHE[key]
    cine = await asyncio.to_thread(demo_cine, *key)
    DEMO_CACHE[key] = cine
    while len(DEMO_CACHE) > DEMO_CACHE_ENTRIES:
        DEMO_CACHE.popitem(last=False)
    return cine


@router.post(
    "/cine/frames",
    response_model=CineFrames,
    dependencies=[ScoringAuth],
    responses={k: v for k, v in ERRORS.items() if k != 503},
)
async def unpack(request: Request, service: ServiceDep, name: str = "upload") -> CineFrames:
    """A DICOM cine, video or image (raw body or multipart `file`) as PNG frames for the page to play."""
    settings = service.settings
    body = await read_body(request, settings.max_body_bytes)
    if media_type_of(request.headers.get("content-type")) == MULTIPART:
        body, _ = await file_part(request, body)
    work = partial(
        unpack_cine,
        body,
        name,
        max_pixels=settings.max_frame_pixels,
        max_frames=settings.max_frames_per_input,
        max_decoded_pixels=settings.max_decoded_pixels,
        max_decode_s=settings.max_decode_s,
    )
    try:
        # The decode lane: a cine never decodes on the inference workers nor unbounded in the default pool.
        lane = service.scorer.lane
        return await (lane.run(work) if lane is not None else asyncio.to_thread(work))
    except FrameError as exc:
        raise from_frame_error(exc) from exc
    except DecodeLaneFullError as exc:
        raise ApiError(429, "queue_full", str(exc), {"Retry-After": str(settings.retry_after_s)}) from exc
