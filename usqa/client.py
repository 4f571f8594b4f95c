"""The usqa Python client: score frames over HTTP and stream them over the /ws/scan WebSocket.

    from usqa.client import Client

    with Client("http://scanner-box:8000", token="...") as usqa:
        print(usqa.assess("frame.png").frames[0].verdict)
        for verdict in usqa.scan(frames):          # numpy arrays, encoded bytes or image paths
            print(verdict.seq, verdict.verdict, verdict.score)

`AsyncClient` has the same methods as coroutines (`scan` is an async iterator). Requests are retried with
exponential backoff on connection errors, 429 and 503 (honouring Retry-After); a stream is opened again
when the server answers "try again later" (close 1013). Streams are paced by the server's answers: the next
frame goes when the last is answered (`window=2` sends one ahead, and falls back to one as soon as the
server reports a replaced frame in `dropped`; `usqa.service.live.pacing`). Verdicts
are read through `usqa.service.live.verdicts`, the one place that knows the result message's fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as sync_connect

from usqa.service.live.client import encode_frame
from usqa.service.live.pacing import DEFAULT_WINDOW, ScanPacer
from usqa.service.live.verdicts import display_score_of, verdict_of

Frame = np.ndarray | bytes | str | Path
RETRY_STATUSES = frozenset({429, 503})
CLOSE_TRY_AGAIN = 1013
RECV_TIMEOUT_S = 30.0


class UsqaError(RuntimeError):
    """The service refused a request (after retries): `status` and the API's `code` and `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Verdict:
    """One frame's answer: its index in the stream (or upload), verdict, display score, the whole message."""

    seq: int
    verdict: str
    score: float
    amenable: bool
    message: dict[str, Any]

    @classmethod
    def of(cls, message: dict[str, Any], seq: int | None = None) -> Verdict:
        return cls(
            seq=int(message["seq"] if seq is None else seq),
            verdict=verdict_of(message),
            score=display_score_of(message),
            amenable=bool(message.get("amenable", False)),
            message=message,
        )


@dataclass(frozen=True)
class Assessment:
    frames: list[Verdict]
    response: dict[str, Any]


def frame_bytes(frame: Frame) -> bytes:
    """A frame as the service reads it: arrays as PNG, paths as their file's bytes, bytes as they are."""
    if isinstance(frame, np.ndarray):
        return encode_frame(frame, raw=False)
    if isinstance(frame, str | Path):
        return Path(frame).read_bytes()
    return bytes(frame)


def _assessment(body: dict[str, Any]) -> Assessment:
    return Assessment([Verdict.of(f, f["index"]) for f in body["frames"]], body)


def _error(response: httpx.Response) -> UsqaError:
    try:
        body = response.json()
        return UsqaError(response.status_code, str(body["code"]), str(body["detail"]))
    except (ValueError, KeyError, TypeError):
        return UsqaError(response.status_code, "http_error", response.text[:200])


class _Settings:
    def __init__(self, url: str, token: str | None, retries: int, backoff_s: float, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.ws_url = "ws" + self.url[4:] + "/ws/scan" if self.url.startswith("http") else self.url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Retry-After when the server gives one, else exponential backoff."""
        if response is not None:
            try:
                return float(response.headers["retry-after"])
            except (KeyError, ValueError):
                pass
        return float(self.backoff_s * 2**attempt)

    def retryable(self, attempt: int, response: httpx.Response | None) -> bool:
        return attempt < self.retries and (response is None or response.status_code in RETRY_STATUSES)


def _answers(message: dict[str, Any], pacer: ScanPacer) -> Verdict | None:
    pacer.on_message(message)
    return Verdict.of(message) if message.get("type") == "result" else None


class AsyncClient:
    """The asynchronous client (see the module docstring)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 30.0,
    ) -> None:
        self._s = _Settings(url, token, retries, backoff_s, timeout_s)
        self._http = httpx.AsyncClient(base_url=self._s.url, headers=self._s.headers, timeout=timeout_s)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._s.retries + 1):
            response: httpx.Response | None = None
            try:
                response = await self._http.request(method, path, **kwargs)
                if response.status_code < 400:
                    return response
            except httpx.TransportError:
                if not self._s.retryable(attempt, None):
                    raise
            if response is not None and not self._s.retryable(attempt, response):
                raise _error(response)
            await asyncio.sleep(self._s.delay(attempt, response))
        raise AssertionError("unreachable")

    async def assess(self, image: Frame) -> Assessment:
        """Score an image or a cine (array, encoded bytes or a path): one verdict per frame."""
        response = await self._request("POST", "/assess", content=frame_bytes(image))
        return _assessment(response.json())

    async def session(self, session_id: str) -> dict[str, Any]:
        """A scan session's report (GET /sessions/{id})."""
        return dict((await self._request("GET", f"/sessions/{session_id}")).json())

    async def scan(
        self, frames: Iterable[Frame] | AsyncIterable[Frame], *, window: int = DEFAULT_WINDOW
    ) -> AsyncIterator[Verdict]:
        """Stream `frames`, paced by the server's answers; yields a verdict per scored frame, in order."""
        async with contextlib.AsyncExitStack() as stack:
            ws = await self._connect(stack)
            pacer = ScanPacer(window)
            async for frame in _aiter(frames):
                while not pacer.may_send():
                    message = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
                    if (verdict := _answers(message, pacer)) is not None:
                        yield verdict
                pacer.on_sent()
                await ws.send(frame_bytes(frame))
            await ws.send(json.dumps({"type": "end"}))
            async for text in ws:
                if (verdict := _answers(json.loads(text), pacer)) is not None:
                    yield verdict

    async def _connect(self, stack: contextlib.AsyncExitStack) -> Any:
        """A stream that said `ready`, opened again while the server says "try again later" (1013)."""
        for attempt in range(self._s.retries + 1):
            try:
                connecting = websockets.connect(self._s.ws_url, additional_headers=self._s.headers or None)
                ws = await stack.enter_async_context(connecting)
                first = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
                if first.get("type") == "ready":
                    return ws
            except ConnectionClosed as exc:
                if exc.rcvd is None or exc.rcvd.code != CLOSE_TRY_AGAIN or attempt == self._s.retries:
                    raise
            except (OSError, InvalidStatus):
                if attempt == self._s.retries:
                    raise
            await asyncio.sleep(self._s.delay(attempt))
        raise ConnectionError(f"no ready message from {self._s.ws_url}")


async def _aiter(frames: Iterable[Frame] | AsyncIterable[Frame]) -> AsyncIterator[Frame]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame


class Client:
    """The synchronous client (see the module docstring)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 30.0,
    ) -> None:
        self._s = _Settings(url, token, retries, backoff_s, timeout_s)
        self._http = httpx.Client(base_url=self._s.url, headers=self._s.headers, timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self._s.retries + 1):
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, path, **kwargs)
                if response.status_code < 400:
                    return response
            except httpx.TransportError:
                if not self._s.retryable(attempt, None):
                    raise
            if response is not None and not self._s.retryable(attempt, response):
                raise _error(response)
            time.sleep(self._s.delay(attempt, response))
        raise AssertionError("unreachable")

    def assess(self, image: Frame) -> Assessment:
        """Score an image or a cine (array, encoded bytes or a path): one verdict per frame."""
        return _assessment(self._request("POST", "/assess", content=frame_bytes(image)).json())

    def session(self, session_id: str) -> dict[str, Any]:
        """A scan session's report (GET /sessions/{id})."""
        return dict(self._request("GET", f"/sessions/{session_id}").json())

    def scan(self, frames: Iterable[Frame], *, window: int = DEFAULT_WINDOW) -> Iterator[Verdict]:
        """Stream `frames`, paced by the server's answers; yields a verdict per scored frame, in order."""
        with contextlib.ExitStack() as stack:
            ws = self._connect(stack)
            pacer = ScanPacer(window)
            for frame in frames:
                while not pacer.may_send():
                    if (verdict := _answers(json.loads(ws.recv(RECV_TIMEOUT_S)), pacer)) is not None:
                        yield verdict
                pacer.on_sent()
                ws.send(frame_bytes(frame))
            ws.send(json.dumps({"type": "end"}))
            for text in ws:
                if (verdict := _answers(json.loads(text), pacer)) is not None:
                    yield verdict

    def _connect(self, stack: contextlib.ExitStack) -> Any:
        """A stream that said `ready`, opened again while the server says "try again later" (1013)."""
        for attempt in range(self._s.retries + 1):
            try:
                connecting = sync_connect(self._s.ws_url, additional_headers=self._s.headers or None)
                ws = stack.enter_context(connecting)
                first = json.loads(ws.recv(RECV_TIMEOUT_S))
                if first.get("type") == "ready":
                    return ws
            except ConnectionClosed as exc:
                if exc.rcvd is None or exc.rcvd.code != CLOSE_TRY_AGAIN or attempt == self._s.retries:
                    raise
            except (OSError, InvalidStatus):
                if attempt == self._s.retries:
                    raise
            time.sleep(self._s.delay(attempt))
        raise ConnectionError(f"no ready message from {self._s.ws_url}")
