"""Control endpoints (bearer token): promote and roll back the served model's aliases, then swap here.

The registry announces the change on Redis for every other instance; this instance swaps at once and says
how the swap went in the response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from usqa.service.api.deps import ControlAuth, ServiceDep
from usqa.service.api.errors import ApiError
from usqa.service.api.schemas import (
    ControlResponse,
    ErrorResponse,
    ModelVersions,
    PromoteRequest,
    RollbackRequest,
)
from usqa.service.api.state import ServiceState, swap_report
from usqa.service.registry import (
    IntegrityError,
    ModelRegistry,
    RedisAnnouncer,
    RegistryError,
    UnservableError,
    open_registry,
)
from usqa.service.registry.warmup import serving_check

router = APIRouter(prefix="/models", tags=["control"], dependencies=[ControlAuth])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Bearer token missing or wrong"},
    403: {"model": ErrorResponse, "description": "No API token configured: control endpoints are disabled"},
    404: {"model": ErrorResponse, "description": "No such model, version or alias"},
    409: {
        "model": ErrorResponse,
        "description": "Refused: tampered or corrupt files, a version whose sessions cannot be built or run a "
        "warm-up frame (the alias stays), or nothing to roll back to",
    },
}


def _registry(service: ServiceState) -> ModelRegistry:
    settings = service.settings
    announcer = (
        RedisAnnouncer(settings.redis_url, channel=settings.registry_channel) if settings.redis_url else None
    )
    return open_registry(settings, announcer)


async def _after_alias_move(service: ServiceState, name: str, alias: str, version: int) -> ControlResponse:
    swap = None
    holder = service.models.holders.get(name)
    if holder is not None and alias == holder.alias:
        swap = swap_report(await holder.refresh("control"))
    current = None if holder is None else holder.current
    return ControlResponse(
        name=name,
        alias=alias,
        version=version,
        served_version=None if current is None else current.number,
        swap=swap,
    )


def _refused(exc: RegistryError, *, missing_status: int = 404) -> ApiError:
    if isinstance(exc, IntegrityError):
        return ApiError(409, "integrity_error", str(exc))
    if isinstance(exc, UnservableError):
        return ApiError(409, "unservable_version", str(exc))
    return ApiError(missing_status, "not_found" if missing_status == 404 else "conflict", str(exc))


async def _move_alias(
    service: ServiceState, move: Callable[[ModelRegistry], int], missing_status: int
) -> int:
    registry = _registry(service)
    try:
        return await asyncio.to_thread(move, registry)
    except RegistryError as exc:
        raise _refused(exc, missing_status=missing_status) from exc
    finally:
        if isinstance(registry.announcer, RedisAnnouncer):
            registry.announcer.close()


@router.post("/{name}/promote", response_model=ControlResponse, responses=ERRORS)
async def promote(name: str, body: PromoteRequest, service: ServiceDep) -> ControlResponse:
    verify = serving_check(service.settings, service.providers)
    version = await _move_alias(service, lambda r: r.promote(name, body.ref, body.alias, verify=verify), 404)
    return await _after_alias_move(service, name, body.alias, version)


@router.post("/{name}/rollback", response_model=ControlResponse, responses=ERRORS)
async def rollback(name: str, body: RollbackRequest, service: ServiceDep) -> ControlResponse:
    verify = serving_check(service.settings, service.providers)
    version = await _move_alias(service, lambda r: r.rollback(name, body.alias, verify=verify), 409)
    return await _after_alias_move(service, name, body.alias, version)


@router.get("/{name}", response_model=ModelVersions, responses=ERRORS)
async def versions(name: str, service: ServiceDep) -> ModelVersions:
    registry = open_registry(service.settings)
    try:
        numbers = await asyncio.to_thread(registry.versions, name)
        aliases = await asyncio.to_thread(registry.aliases, name)
    except RegistryError as exc:
        raise _refused(exc) from exc
    holder = service.models.holders.get(name)
    current = None if holder is None else holder.current
    return ModelVersions(
        name=name,
        versions=numbers,
        aliases=aliases.current,
        served_version=None if current is None else current.number,
    )
