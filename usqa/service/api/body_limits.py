"""Request bodies bounded server-wide: an in-flight byte budget across all requests, and read timeouts.

Each request's body bytes count against `USQA_MAX_INFLIGHT_BODY_BYTES` from the moment they arrive until its
response is finished; a body that would take the total past it is refused with 503 and Retry-After (a body
that declares its length is refused before a byte of it is read). A body that sends nothing for
`USQA_BODY_IDLE_TIMEOUT_S`, or is not complete after `USQA_BODY_READ_TIMEOUT_S`, is answered 408 and its
connection is freed: a client that stops half-way holds neither memory nor a connection for long.

A pure ASGI middleware around `receive`, so every route that reads a body is covered; once the body is
complete, `receive` is passed through untimed (a streaming response listens on it for the disconnect). After a
request whose body was large, the freed heap goes back to the system (`usqa.service.heap`): its body, the arrays
decoded from it and its answer (a cine's PNG frames) had left tens of MB resident.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usqa.service.api.errors import ApiError
from usqa.service.heap import trim_heap

BODY_BUDGET_EXCEEDED: Final = "the server is holding too many request bodies at once (USQA_MAX_INFLIGHT_BODY_BYTES); retry after {retry} s"
BODY_TIMEOUT: Final = (
    "the request body did not arrive in time: nothing for {idle:g} s or not complete after {total:g} s "
    "(USQA_BODY_IDLE_TIMEOUT_S, USQA_BODY_READ_TIMEOUT_S)"
)
# A body at least this large trims the heap once its request is over: below it, what stays is reused by the next
# requests, and a trim would cost more than it returns.
TRIM_AFTER_BYTES: Final = 8 * 2**20


class BodyLimits:
    """The ASGI middleware; `inflight` is the bytes of request bodies held now, across requests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_inflight_bytes: int,
        idle_timeout_s: float,
        read_timeout_s: float,
        retry_after_s: int,
    ) -> None:
        self.app = app
        self.max_inflight_bytes = max_inflight_bytes
        self.idle_timeout_s = idle_timeout_s
        self.read_timeout_s = read_timeout_s
        self.retry_after_s = retry_after_s
        self.inflight = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(self, scope, receive)
        try:
            await self.app(scope, body.receive, send)
        finally:
            self._take(-body.held)
            if body.arrived >= TRIM_AFTER_BYTES:
                await asyncio.to_thread(trim_heap)  # off the loop: the streams' frames go on meanwhile

    def _take(self, size: int) -> bool:
        with self._lock:
            if size > 0 and self.inflight + size > self.max_inflight_bytes:
                return False
            self.inflight += size
            return True

    def busy(self) -> ApiError:
        retry = str(self.retry_after_s)
        return ApiError(
            503, "body_budget_exceeded", BODY_BUDGET_EXCEEDED.format(retry=retry), {"Retry-After": retry}
        )

    def timed_out(self) -> ApiError:
        return ApiError(
            408, "body_timeout", BODY_TIMEOUT.format(idle=self.idle_timeout_s, total=self.read_timeout_s)
        )


class _Body:
    """One request's `receive`, counted and timed until its body is complete."""

    def __init__(self, limits: BodyLimits, scope: Scope, receive: Receive) -> None:
        self.limits = limits
        self.inner = receive
        self.declared = _declared_length(scope)
        self.held = 0  # bytes taken from the budget: the declared length, or what arrived if more
        self.arrived = 0
        self.started = False
        self.complete = False
        self.deadline = time.monotonic() + limits.read_timeout_s

    async def receive(self) -> Message:
        if self.complete:
            return await self.inner()
        if not self.started:
            self.started = True
            self._hold(self.declared)  # a crowd of declared bodies is refused before any byte is read
        wait = min(self.limits.idle_timeout_s, self.deadline - time.monotonic())
        try:
            async with asyncio.timeout(max(wait, 0.0)):  # no task per message, as wait_for would make
                message = await self.inner()
        except TimeoutError:
            self.complete = True
            raise self.limits.timed_out() from None
        if message["type"] != "http.request":
            self.complete = True
            return message
        self.complete = not message.get("more_body", False)
        self.arrived += len(message.get("body", b""))
        self._hold(self.arrived)
        return message

    def _hold(self, size: int) -> None:
        if size > self.held:
            if not self.limits._take(size - self.held):
                self.complete = True
                raise self.limits.busy()
            self.held = size


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0
