"""The asynchronous client: the core's requests and scan over httpx.AsyncClient and websockets' asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from usqa.client import core
from usqa.client.core import Assessment, Dataset, Frame, Job, JobEvent, Verdict
from usqa.client.pacing import DEFAULT_WINDOW
from usqa.client.stream import OnMessage, StreamReport, play_on, prepared


class AsyncClient:
    """The usqa client's coroutines (see the package docstring); `scan` and `follow_job` iterate async."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 30.0,
        model: str | None = None,
    ) -> None:
        # `model`: the exam whose model scores this client's frames and streams (GET /models); None the default.
        self.endpoint = core.Endpoint.of(url, token, model)
        self.policy = core.RetryPolicy(retries, backoff_s)
        self._timeout_s = timeout_s
        self._http_client: httpx.AsyncClient | None = (
            None  # made on the first request: a scan needs no HTTP pool
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx.AsyncClient(
                base_url=self.endpoint.http, headers=self.endpoint.headers, timeout=self._timeout_s
            )
        return self._http_client

    async def send(self, request: core.Request, *, stream: bool = False) -> httpx.Response:
        """A request through the retry policy; its last response whatever the status (read unless `stream`)."""
        attempt = 0
        while True:
            try:
                built = self._http.build_request(request.method, request.path, **request.options)
                response = await self._http.send(built, stream=stream)
            except httpx.TransportError:
                if (delay := self.policy.after_error(attempt)) is None:
                    raise
            else:
                if (
                    response.status_code < 400
                    or (delay := self.policy.after_response(attempt, response)) is None
                ):
                    return response
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    async def _ok(self, request: core.Request) -> httpx.Response:
        response = await self.send(request)
        if response.status_code >= 400:
            raise core.error_of(response)
        return response

    async def assess(self, image: Frame) -> Assessment:
        """Score an image or a cine (array, encoded bytes or a path): one verdict per frame."""
        return Assessment.of((await self._ok(core.assess_request(image, self.endpoint.model))).json())

    async def session(self, session_id: str) -> dict[str, Any]:
        """A scan session's report (GET /sessions/{id})."""
        return dict((await self._ok(core.session_request(session_id))).json())

    async def session_dicom(self, session_id: str) -> dict[str, bytes]:
        """The scan as DICOM objects by file name (GET /sessions/{id}/dicom): the captures and the SR."""
        return core.unzipped((await self._ok(core.session_dicom_request(session_id))).content)

    async def upload(self, archive: Path | bytes, name: str | None = None) -> Dataset:
        """Upload a data set for retraining (a zip or tar of the folder format, or the folder): POST /datasets."""
        return Dataset.of(await self._ok(core.upload_request(archive, name)))

    async def retrain(
        self, spec: Mapping[str, Any], *, idempotency_key: str | None = None, **fields: Any
    ) -> Job:
        """Queue a retraining job (POST /retrain; `spec` as docs/retraining.md, `fields` merged into it)."""
        return Job.of((await self._ok(core.retrain_request({**spec, **fields}, idempotency_key))).json())

    async def job(self, job_id: str) -> Job:
        """A job's status now (GET /jobs/{id})."""
        return Job.of((await self._ok(core.job_request(job_id))).json())

    async def exams(self) -> dict[str, Any]:
        """The exams this service serves, the default first, with each one's version and state (GET /models)."""
        return dict((await self._ok(core.exams_request())).json())

    async def model(self, name: str) -> dict[str, Any]:
        """A model's versions, aliases and the version this replica serves (GET /models/{name})."""
        return dict((await self._ok(core.model_request(name))).json())

    async def promote(self, name: str, ref: str | int, alias: str = "champion") -> dict[str, Any]:
        """Point `alias` at version `ref` (a number, an alias or 'latest') and swap here: POST promote."""
        return dict((await self._ok(core.promote_request(name, ref, alias))).json())

    async def rollback(self, name: str, alias: str = "champion") -> dict[str, Any]:
        """Point `alias` back at the version it named before: POST rollback."""
        return dict((await self._ok(core.rollback_request(name, alias))).json())

    async def job_events(self, job_id: str, *, timeout_s: float | None = None) -> AsyncIterator[JobEvent]:
        """GET /jobs/{id}/events as it comes: every server-sent event, until the stream ends."""
        response = await self.send(core.job_events_request(job_id, timeout_s), stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise core.error_of(response)
            parser = core.EventParser()
            async for line in response.aiter_lines():
                if (event := parser.feed(line)) is not None:
                    yield event
        finally:
            await response.aclose()

    async def follow_job(self, job_id: str, *, timeout_s: float | None = None) -> AsyncIterator[Job]:
        """A job's status at each change until it finishes (the last one yielded is final)."""
        async for event in self.job_events(job_id, timeout_s=timeout_s):
            if (job := core.job_of_event(event)) is not None:
                yield job

    def scan(
        self, frames: Iterable[Frame] | AsyncIterable[Frame], *, window: int = DEFAULT_WINDOW
    ) -> AsyncScanRun:
        """Stream `frames`, paced by the server's answers: `async for` over the run for a verdict per frame,
        in order (a refused frame's has `error` set); its `session` is known once the stream opens, its
        `summary` once it ends."""
        return AsyncScanRun(self, frames, window)

    @contextlib.asynccontextmanager
    async def open_scan(self) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
        """A /ws/scan stream past its `ready` (with it), opened again while the server says "try again later"."""
        attempt = 0
        while True:
            close_code = status = None
            cause: Exception | None = None
            async with contextlib.AsyncExitStack() as stack:
                try:
                    ws = await stack.enter_async_context(
                        connect(
                            self.endpoint.ws,
                            additional_headers=self.endpoint.headers or None,
                            max_size=core.MAX_MESSAGE_BYTES,
                        )
                    )
                    ready = core.ready_of(await asyncio.wait_for(ws.recv(), core.RECV_TIMEOUT_S))
                except InvalidStatus as exc:
                    status, cause = exc.response.status_code, exc
                except ConnectionClosed as exc:
                    if exc.rcvd is None:
                        raise
                    close_code, cause = exc.rcvd.code, exc
                except OSError as exc:
                    cause = exc
                else:
                    if ready is None:
                        raise ConnectionError(f"{self.endpoint.ws} sent no ready message")
                    yield ws, ready
                    return
            if (delay := self.policy.after_scan_refusal(attempt, close_code, status)) is None:
                raise core.scan_refused(self.endpoint.ws, cause) from cause
            await asyncio.sleep(delay)
            attempt += 1

    async def play(
        self,
        frames: Sequence[np.ndarray | bytes],
        *,
        fps: float | None,
        raw: bool = False,
        on_message: OnMessage | None = None,
        until: Any = None,
        dicom: Sequence[dict[str, str]] = (),
        study: Mapping[str, str] | None = None,
        offset_s: float = 0.0,
    ) -> StreamReport:
        """Play `frames` (uint8 arrays, or payloads encoded already) as a scanner would: one every 1/`fps` s
        whatever the answers (None: each as soon as the last is answered), then `end`; latency per frame.

        With `until`, the frames play in a loop until `until()` is true. `dicom` names the DICOM instances the
        frames came from (their UIDs reach the session report); `study` the study the scan is filed in (its
        UID and patient fields, each optional: docs/pacs.md); `offset_s` delays the schedule's start.
        """
        payloads, hello = prepared(frames, raw, dicom, study)
        async with self.open_scan() as (ws, ready):
            if on_message is not None:
                on_message(ready, None)
            return await play_on(
                ws, payloads, fps=fps, hello=hello, on_message=on_message, until=until, offset_s=offset_s
            )


async def _aiter(frames: Iterable[Frame] | AsyncIterable[Frame]) -> AsyncIterator[Frame]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame


class AsyncScanRun:
    """`AsyncClient.scan`: an async iterable of each frame's verdict, with the session id and the summary."""

    def __init__(
        self, client: AsyncClient, frames: Iterable[Frame] | AsyncIterable[Frame], window: int
    ) -> None:
        self._client, self._frames, self._window = client, frames, window
        self.session: str | None = None
        self.summary: dict[str, Any] | None = None

    async def __aiter__(self) -> AsyncIterator[Verdict]:
        async with self._client.open_scan() as (ws, ready):
            exchange = core.ScanExchange(self._window, ready)
            self.session = exchange.session
            async for frame in _aiter(self._frames):
                while not exchange.may_send():
                    async with asyncio.timeout(core.RECV_TIMEOUT_S):
                        text = await ws.recv()
                    if (verdict := exchange.answer(text)) is not None:
                        yield verdict
                await ws.send(exchange.sending(frame))
            await ws.send(core.END_MESSAGE)
            async for text in ws:
                if (verdict := exchange.answer(text)) is not None:
                    yield verdict
            self.summary = exchange.summary
