"""The synchronous client: the core's requests and scan over httpx.Client and websockets' sync client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from usqa.client import core
from usqa.client.core import Assessment, Dataset, Frame, Job, JobEvent, Verdict
from usqa.client.pacing import DEFAULT_WINDOW
from usqa.client.stream import OnMessage, StreamReport


class Client:
    """The usqa client (see the package docstring); `AsyncClient` has the same methods as coroutines."""

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
        self._token = token
        self._timeout_s = timeout_s
        self._http_client: httpx.Client | None = None  # made on the first request: a scan needs no HTTP pool

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http_client is not None:
            self._http_client.close()

    @property
    def _http(self) -> httpx.Client:
        if self._http_client is None:
            self._http_client = httpx.Client(
                base_url=self.endpoint.http, headers=self.endpoint.headers, timeout=self._timeout_s
            )
        return self._http_client

    def send(self, request: core.Request, *, stream: bool = False) -> httpx.Response:
        """A request through the retry policy; its last response whatever the status (read unless `stream`)."""
        attempt = 0
        while True:
            try:
                built = self._http.build_request(request.method, request.path, **request.options)
                response = self._http.send(built, stream=stream)
            except httpx.TransportError:
                if (delay := self.policy.after_error(attempt)) is None:
                    raise
            else:
                if (
                    response.status_code < 400
                    or (delay := self.policy.after_response(attempt, response)) is None
                ):
                    return response
                response.close()
            time.sleep(delay)
            attempt += 1

    def _ok(self, request: core.Request) -> httpx.Response:
        response = self.send(request)
        if response.status_code >= 400:
            raise core.error_of(response)
        return response

    def assess(self, image: Frame) -> Assessment:
        """Score an image or a cine (array, encoded bytes or a path): one verdict per frame."""
        return Assessment.of(self._ok(core.assess_request(image, self.endpoint.model)).json())

    def session(self, session_id: str) -> dict[str, Any]:
        """A scan session's report (GET /sessions/{id})."""
        return dict(self._ok(core.session_request(session_id)).json())

    def session_dicom(self, session_id: str) -> dict[str, bytes]:
        """The scan as DICOM objects by file name (GET /sessions/{id}/dicom): the captures and the SR."""
        return core.unzipped(self._ok(core.session_dicom_request(session_id)).content)

    def upload(self, archive: Path | bytes, name: str | None = None) -> Dataset:
        """Upload a data set for retraining (a zip or tar of the folder format, or the folder): POST /datasets."""
        return Dataset.of(self._ok(core.upload_request(archive, name)))

    def retrain(self, spec: Mapping[str, Any], *, idempotency_key: str | None = None, **fields: Any) -> Job:
        """Queue a retraining job (POST /retrain; `spec` as docs/retraining.md, `fields` merged into it)."""
        return Job.of(self._ok(core.retrain_request({**spec, **fields}, idempotency_key)).json())

    def job(self, job_id: str) -> Job:
        """A job's status now (GET /jobs/{id})."""
        return Job.of(self._ok(core.job_request(job_id)).json())

    def exams(self) -> dict[str, Any]:
        """The exams this service serves, the default first, with each one's version and state (GET /models)."""
        return dict(self._ok(core.exams_request()).json())

    def model(self, name: str) -> dict[str, Any]:
        """A model's versions, aliases and the version this replica serves (GET /models/{name})."""
        return dict(self._ok(core.model_request(name)).json())

    def promote(self, name: str, ref: str | int, alias: str = "champion") -> dict[str, Any]:
        """Point `alias` at version `ref` (a number, an alias or 'latest') and swap here: POST promote."""
        return dict(self._ok(core.promote_request(name, ref, alias)).json())

    def rollback(self, name: str, alias: str = "champion") -> dict[str, Any]:
        """Point `alias` back at the version it named before: POST rollback."""
        return dict(self._ok(core.rollback_request(name, alias)).json())

    def job_events(self, job_id: str, *, timeout_s: float | None = None) -> Iterator[JobEvent]:
        """GET /jobs/{id}/events as it comes: every server-sent event, until the stream ends."""
        response = self.send(core.job_events_request(job_id, timeout_s), stream=True)
        with contextlib.closing(response):
            if response.status_code >= 400:
                response.read()
                raise core.error_of(response)
            parser = core.EventParser()
            for line in response.iter_lines():
                if (event := parser.feed(line)) is not None:
                    yield event

    def follow_job(self, job_id: str, *, timeout_s: float | None = None) -> Iterator[Job]:
        """A job's status at each change until it finishes (the last one yielded is final)."""
        for event in self.job_events(job_id, timeout_s=timeout_s):
            if (job := core.job_of_event(event)) is not None:
                yield job

    def scan(self, frames: Iterable[Frame], *, window: int = DEFAULT_WINDOW) -> ScanRun:
        """Stream `frames`, paced by the server's answers: iterate the run for a verdict per frame, in order
        (a refused frame's has `error` set); its `session` is known once the stream opens, its `summary` once
        it ends."""
        return ScanRun(self, frames, window)

    @contextlib.contextmanager
    def open_scan(self) -> Iterator[tuple[ClientConnection, dict[str, Any]]]:
        """A /ws/scan stream past its `ready` (with it), opened again while the server says "try again later"."""
        attempt = 0
        while True:
            close_code = status = None
            cause: Exception | None = None
            with contextlib.ExitStack() as stack:
                try:
                    ws = stack.enter_context(
                        connect(
                            self.endpoint.ws,
                            additional_headers=self.endpoint.headers or None,
                            max_size=core.MAX_MESSAGE_BYTES,
                        )
                    )
                    ready = core.ready_of(ws.recv(core.RECV_TIMEOUT_S))
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
            time.sleep(delay)
            attempt += 1

    def play(self, frames: Sequence[Any], *, fps: float | None, **options: Any) -> StreamReport:
        """`AsyncClient.play` (a fixed frame rate, latency per frame), run to its end on a private loop."""
        from usqa.client.aio import AsyncClient

        async def play() -> StreamReport:
            async with AsyncClient(
                self.endpoint.ws,
                token=self._token,
                retries=self.policy.retries,
                backoff_s=self.policy.backoff_s,
            ) as client:
                return await client.play(frames, fps=fps, **options)

        return asyncio.run(play())


__all__ = ["Client", "OnMessage"]


class ScanRun:
    """`Client.scan`: an iterable of each frame's verdict, with the session id and the summary."""

    def __init__(self, client: Client, frames: Iterable[Frame], window: int) -> None:
        self._client, self._frames, self._window = client, frames, window
        self.session: str | None = None
        self.summary: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[Verdict]:
        with self._client.open_scan() as (ws, ready):
            exchange = core.ScanExchange(self._window, ready)
            self.session = exchange.session
            for frame in self._frames:
                while not exchange.may_send():
                    if (verdict := exchange.answer(ws.recv(core.RECV_TIMEOUT_S))) is not None:
                        yield verdict
                ws.send(exchange.sending(frame))
            ws.send(core.END_MESSAGE)
            for text in ws:
                if (verdict := exchange.answer(text)) is not None:
                    yield verdict
            self.summary = exchange.summary
