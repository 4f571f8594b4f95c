"""WebSocket /ws/scan: live feedback per frame while the sonographer scans (protocol in `scan_messages`)."""

from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter, WebSocket

from usqa.contracts.protocol import CloseCode
from usqa.service.api.deps import ServiceDep
from usqa.service.api.scan_messages import (
    MSG_CAPACITY_REASON,
    MSG_CLIENT_SESSIONS_REASON,
    MSG_NO_MODEL_REASON,
    MSG_ORIGIN_REASON,
    MSG_SESSIONS_REASON,
    MSG_TOKEN_REASON,
)
from usqa.service.api.scan_session import ScanSession
from usqa.service.api.security import bearer_token, token_matches
from usqa.service.inference.served_models import ModelNotServedError

log = logging.getLogger(__name__)

router = APIRouter(tags=["scoring"])
# A WebSocket close reason is at most 123 bytes.
MAX_CLOSE_REASON = 120


@router.websocket("/ws/scan")
async def scan(websocket: WebSocket, service: ServiceDep) -> None:
    # Accept first, then refuse with a close code and reason: a client (and a browser) can read those,
    # while a refusal during the handshake is only an HTTP 403.
    await websocket.accept()
    settings = service.settings
    if not origin_allowed(websocket, settings.scan_allowed_origins):
        service.metrics.sessions_refused.labels(reason="origin").inc()
        await websocket.close(code=CloseCode.POLICY, reason=MSG_ORIGIN_REASON)
        return
    if settings.require_token_for_scoring:
        given = bearer_token(websocket.headers.get("authorization")) or websocket.query_params.get("token")
        if settings.api_token is None or not token_matches(settings.api_token, given):
            service.metrics.sessions_refused.labels(reason="token").inc()
            await websocket.close(code=CloseCode.POLICY, reason=MSG_TOKEN_REASON)
            return
    try:
        holder = service.models.holder(websocket.query_params.get("model"))
    except ModelNotServedError as exc:
        service.metrics.sessions_refused.labels(reason="unknown_model").inc()
        await websocket.close(code=CloseCode.POLICY, reason=str(exc)[:MAX_CLOSE_REASON])
        return
    model = holder.current
    if model is None:
        service.metrics.sessions_refused.labels(reason="no_model").inc()
        await websocket.close(code=CloseCode.TRY_AGAIN, reason=MSG_NO_MODEL_REASON)
        return
    client = counted_client(websocket)
    refusal = service.sessions.acquire(client)
    if refusal is not None:
        service.metrics.sessions_refused.labels(reason=refusal).inc()
        if refusal == "client_limit":
            limit = service.sessions.per_client
            log.warning("refused a scan session: %s holds %d, its limit", client, limit)
            reason = MSG_CLIENT_SESSIONS_REASON.format(limit=limit)
        else:
            log.warning(
                "refused a scan session: %d of %d open", service.sessions.open, service.sessions.limit
            )
            reason = MSG_SESSIONS_REASON
        await websocket.close(code=CloseCode.TRY_AGAIN, reason=reason)
        return
    # The measured capacity: one more stream must fit beside the running ones, or none slows down for it.
    if not service.capacity.admits(service.sessions.open - 1):
        service.sessions.release(client)
        service.metrics.sessions_refused.labels(reason="capacity").inc()
        estimate = service.capacity.estimate()
        log.warning("refused a scan session at capacity: %s", estimate.describe())
        reason = MSG_CAPACITY_REASON.format(streams=estimate.streams, fps=estimate.stream_fps)
        await websocket.close(code=CloseCode.TRY_AGAIN, reason=reason)
        return
    service.metrics.sessions_open.inc()
    try:
        await ScanSession(websocket, service, holder, model).run()
    finally:
        service.sessions.release(client)
        service.metrics.sessions_open.dec()


def counted_client(websocket: WebSocket) -> str | None:
    """The address whose streams count against USQA_SCAN_SLOTS_PER_CLIENT; None for this host (loopback).

    Behind a proxy whose X-Forwarded-For uvicorn trusts, this is the forwarded client's address.
    """
    if websocket.client is None:
        return None
    host = websocket.client.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a test client's name): counted as it is named
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return None if address.is_loopback else str(address)


def origin_allowed(websocket: WebSocket, allowed: tuple[str, ...]) -> bool:
    """A browser's Origin is the service's own (its host and port), or listed; no Origin is no browser."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in {entry.strip().rstrip("/").lower() for entry in allowed}:
        return True
    host = (websocket.headers.get("host") or "").strip().lower()
    _, separator, authority = origin.partition("://")
    return bool(separator) and bool(host) and authority == host
