"""The client's shared core, with no I/O: where to connect, which requests to send, when to retry, how fast
to stream and what the answers mean. `Client` (sync.py) and `AsyncClient` (aio.py) only move bytes.

Retries: connection errors, 429 and 503 (honouring Retry-After), and a stream the server closes with 1013
("try again later") before its `ready`, with exponential backoff. POST /retrain carries an Idempotency-Key
(one per call), so a retried submission never queues a second job.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import httpx
import numpy as np

from usqa.client.archives import zipped
from usqa.client.pacing import DEFAULT_WINDOW, ScanPacer
from usqa.contracts.protocol import CloseCode, MessageType, display_score_of, verdict_of

Frame = np.ndarray | bytes | str | Path
RETRY_STATUSES: Final = frozenset({429, 503})
RECV_TIMEOUT_S: Final = 30.0
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
SCAN_PATH: Final = "/ws/scan"
END_MESSAGE: Final = json.dumps({"type": MessageType.END})
# Celery's names of a finished job, as usqa.service.jobs.queue has them (not imported: it loads Celery).
TERMINAL_STATES: Final = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
# The status of a UsqaError that an event stream reported after its 200 (GET /jobs/{id}/events).
IN_STREAM: Final = 0


class UsqaError(RuntimeError):
    """The service refused a request (after retries): `status` and the API's `code` and `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


def error_of(response: httpx.Response) -> UsqaError:
    """The API's JSON error (`code`, `detail`) of a read response, or its status and text."""
    try:
        body = response.json()
        return UsqaError(response.status_code, str(body["code"]), str(body["detail"]))
    except (ValueError, KeyError, TypeError):
        return UsqaError(response.status_code, "http_error", response.text[:200])


@dataclass(frozen=True)
class Endpoint:
    """A service's HTTP base and /ws/scan URLs, from either (`http://host:8000` or `ws://host:8000/ws/scan`)."""

    http: str
    ws: str
    headers: dict[str, str] = field(default_factory=dict)

    model: str | None = None  # the exam's model (GET /models); None: the service's default

    @classmethod
    def of(cls, url: str, token: str | None, model: str | None = None) -> Endpoint:
        url = url.rstrip("/")
        if url.startswith("ws"):
            base = url.split("/ws/", 1)[0]
            http, ws = "http" + base[2:], url
        else:
            http, ws = url, "ws" + url[4:] + SCAN_PATH
        if model is not None:
            ws = str(httpx.URL(ws).copy_merge_params({"model": model}))
        return cls(http, ws, {"Authorization": f"Bearer {token}"} if token else {}, model)


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed attempt is tried again, and after how long: None means give up (raise)."""

    retries: int = 3
    backoff_s: float = 0.5

    def backoff(self, attempt: int) -> float:
        return float(self.backoff_s * 2**attempt)

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """A 429 or 503 is tried again after its Retry-After (else the backoff); other errors are final."""
        if attempt >= self.retries or response.status_code not in RETRY_STATUSES:
            return None
        try:
            return float(response.headers["retry-after"])
        except (KeyError, ValueError):
            return self.backoff(attempt)

    def after_error(self, attempt: int) -> float | None:
        """A connection error (or no answer) is tried again after the backoff."""
        return None if attempt >= self.retries else self.backoff(attempt)

    def after_scan_refusal(self, attempt: int, close_code: int | None, status: int | None) -> float | None:
        """A stream closed before `ready` (`close_code`) or refused at the upgrade (`status`): only "try again
        later" (1013, 429, 503) and network errors (both None) are tried again."""
        if close_code is not None and close_code != CloseCode.TRY_AGAIN:
            return None
        if status is not None and status not in RETRY_STATUSES:
            return None
        return self.after_error(attempt)


class ScanRefused(ConnectionError):
    """/ws/scan could not be opened: `close_code` and `close_reason` when the service closed it before its
    `ready` (1013 at capacity, 1008 a policy), else None (a refused handshake or the network)."""

    def __init__(
        self, url: str, cause: Exception | None, close_code: int | None, close_reason: str = ""
    ) -> None:
        super().__init__(f"cannot open {url}: {cause}")
        self.close_code, self.close_reason = close_code, close_reason


def scan_refused(url: str, cause: Exception | None) -> ScanRefused:
    """The error for a stream that would not open (the close frame, if any, read from `cause`)."""
    received = getattr(cause, "rcvd", None)
    if received is None:
        return ScanRefused(url, cause, None)
    return ScanRefused(url, cause, int(received.code), str(received.reason))


# -- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request, ready for httpx's `build_request(method, path, **options)`."""

    method: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


def assess_request(image: Frame, model: str | None = None) -> Request:
    options: dict[str, Any] = {"content": frame_bytes(image)}
    if model is not None:
        options["params"] = {"model": model}
    return Request("POST", "/assess", options)


def session_request(session_id: str) -> Request:
    return Request("GET", f"/sessions/{session_id}")


def session_dicom_request(session_id: str) -> Request:
    return Request("GET", f"/sessions/{session_id}/dicom")


def unzipped(data: bytes) -> dict[str, bytes]:
    """A zip's members by name (the service's own small archives)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def upload_request(archive: Path | bytes, name: str | None = None) -> Request:
    """POST /datasets: a zip or tar of the data-set folder format, or the folder itself (zipped here); read
    whole, so that a retry can send it again."""
    if isinstance(archive, Path) and archive.is_dir():
        name, archive = name or f"{archive.name}.zip", zipped(archive)
    elif isinstance(archive, Path):
        name, archive = name or archive.name, archive.read_bytes()
    return Request("POST", "/datasets", {"files": {"file": (name or "dataset.zip", archive)}})


def retrain_request(spec: Mapping[str, Any], idempotency_key: str | None = None) -> Request:
    """POST /retrain with an Idempotency-Key (a fresh one unless given): retries return the same job."""
    key = idempotency_key or uuid.uuid4().hex
    return Request("POST", "/retrain", {"json": dict(spec), "headers": {"Idempotency-Key": key}})


def job_request(job_id: str) -> Request:
    return Request("GET", f"/jobs/{job_id}")


def exams_request() -> Request:
    return Request("GET", "/models")


def model_request(name: str) -> Request:
    return Request("GET", f"/models/{name}")


def promote_request(name: str, ref: str | int, alias: str = "champion") -> Request:
    return Request("POST", f"/models/{name}/promote", {"json": {"ref": str(ref), "alias": alias}})


def rollback_request(name: str, alias: str = "champion") -> Request:
    return Request("POST", f"/models/{name}/rollback", {"json": {"alias": alias}})


def job_events_request(job_id: str, timeout_s: float | None) -> Request:
    """GET /jobs/{id}/events; the server sends a keep-alive while a job is quiet, so reads may wait long."""
    return Request("GET", f"/jobs/{job_id}/events", {"timeout": httpx.Timeout(30.0, read=timeout_s)})


# -- answers ---------------------------------------------------------------------------------------------


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

    @classmethod
    def refused(cls, message: dict[str, Any]) -> Verdict:
        """A frame the server refused (a stream's `error` message for it): no score, never amenable."""
        return cls(
            seq=int(message["seq"]),
            verdict=MessageType.ERROR,
            score=float("nan"),
            amenable=False,
            message=message,
        )

    @property
    def error(self) -> str | None:
        """Why the server refused the frame (its code and message), or None for a scored frame."""
        if self.message.get("type") != MessageType.ERROR:
            return None
        return f"{self.message.get('code')}: {self.message.get('message')}"


@dataclass(frozen=True)
class Assessment:
    frames: list[Verdict]
    response: dict[str, Any]

    @classmethod
    def of(cls, body: dict[str, Any]) -> Assessment:
        return cls([Verdict.of(f, f["index"]) for f in body["frames"]], body)


@dataclass(frozen=True)
class Dataset:
    """An uploaded data set: its id, frames, split sizes; `created` is False when it was there already."""

    id: str
    frames: int
    splits: dict[str, int]
    created: bool
    body: dict[str, Any]

    @classmethod
    def of(cls, response: httpx.Response) -> Dataset:
        body = dict(response.json())
        return cls(
            str(body["id"]), int(body["frames"]), dict(body["splits"]), response.status_code == 201, body
        )


@dataclass(frozen=True)
class Job:
    """A retraining job's status (GET /jobs/{id}): Celery's state, progress, and the report or error."""

    id: str
    state: str
    progress: dict[str, Any]
    report: dict[str, Any] | None
    error: str | None
    body: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def of(cls, body: dict[str, Any]) -> Job:
        return cls(
            id=str(body["id"]),
            state=str(body["state"]),
            progress=dict(body.get("progress") or {}),
            report=body.get("report"),
            error=body.get("error"),
            body=body,
        )


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of GET /jobs/{id}/events: `status` (a job), `end` or `error`."""

    event: str
    data: dict[str, Any]


class EventParser:
    """Server-sent events from a response's lines (comments and keep-alives skipped)."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> JobEvent | None:
        if line.startswith("event:"):
            self.event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            self.data.append(line[len("data:") :].strip())
        elif not line and self.data:
            event = JobEvent(self.event, json.loads("\n".join(self.data)))
            self.event, self.data = "message", []
            return event
        return None


def job_of_event(event: JobEvent) -> Job | None:
    """The job in a `status` event; an `error` event raises; `end` and others give None."""
    if event.event == "error":
        raise UsqaError(IN_STREAM, str(event.data.get("code")), str(event.data.get("detail")))
    return Job.of(event.data) if event.event == "status" else None


# -- frames and the paced scan ---------------------------------------------------------------------------


def encode_frame(frame: np.ndarray, raw: bool) -> bytes:
    """A uint8 grayscale frame as the stream sends it: its raw bytes, or a PNG."""
    if raw:
        return np.ascontiguousarray(frame).tobytes()
    ok, data = cv2.imencode(".png", frame)
    if not ok:
        raise ValueError("could not encode a frame as PNG")
    return bytes(data.tobytes())


def frame_bytes(frame: Frame) -> bytes:
    """A frame as the service reads it: arrays as PNG, paths as their file's bytes, bytes as they are."""
    if isinstance(frame, np.ndarray):
        return encode_frame(frame, raw=False)
    if isinstance(frame, str | Path):
        return Path(frame).read_bytes()
    return bytes(frame)


def ready_of(text: str | bytes) -> dict[str, Any] | None:
    """The stream's first message, when it is `ready` (None otherwise)."""
    message = json.loads(text)
    return dict(message) if isinstance(message, dict) and message.get("type") == MessageType.READY else None


class ScanExchange:
    """A scan paced by the server's answers (`ScanPacer`): `may_send` before each frame, `sending` to count
    it and get its bytes, `answer` for each message (a scored or refused frame's verdict, else None). The
    session id comes from the `ready`, the summary from the last message."""

    def __init__(self, window: int = DEFAULT_WINDOW, ready: Mapping[str, Any] | None = None) -> None:
        self.pacer = ScanPacer(window)
        self.session: str | None = None if ready is None else ready.get("session")
        self.summary: dict[str, Any] | None = None

    def may_send(self) -> bool:
        return self.pacer.may_send()

    def sending(self, frame: Frame) -> bytes:
        self.pacer.on_sent()
        return frame_bytes(frame)

    def answer(self, text: str | bytes) -> Verdict | None:
        message = json.loads(text)
        self.pacer.on_message(message)
        kind = message.get("type")
        if kind == MessageType.RESULT:
            return Verdict.of(message)
        if kind == MessageType.ERROR:
            if message.get("seq") is None:  # not about a frame: the stream itself is wrong
                raise UsqaError(IN_STREAM, str(message.get("code")), str(message.get("message")))
            return Verdict.refused(message)
        if kind == MessageType.SUMMARY:
            self.summary = message
        return None
