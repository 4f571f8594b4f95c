"""The resource-bounds harness (tests/reliability/test_resource_bounds.py): the limits the server runs
under, a paced frame flood with a memory sampler, oversized bodies over a raw socket, and crowds of
sessions."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.reliability.conftest import (
    AUTH,
    ServiceUnderTest,
    cases,
)
from usqa.contracts.protocol import CloseCode
from usqa.service.api.errors import BODY_TOO_LARGE
from usqa.service.api.routes.datasets import UPLOAD_TOO_LARGE
from usqa.service.api.scan_messages import MSG_SESSIONS_REASON

RECV_TIMEOUT_S: Final = 10.0
HTTP_TIMEOUT_S: Final = 10.0
# The flood: a scanner sending at ten times its usual 30 fps, for ~2 s in the fast run and 10 s in the full.
FLOOD_FPS: Final = 300
FLOOD_SECONDS: Final = cases(2, 10)
WARMUP_SECONDS: Final = 0.5
# A frame the size a scanner sends (640x480 JPEG, ~120 kB, a few ms to decode and score).
FLOOD_SHAPE: Final = (480, 640)
FLOOD_VARIANTS: Final = 4
# Then a burst, sent as fast as the socket takes it: the service cannot score that fast on any machine.
BURST_FRAMES: Final = cases(300, 1000)
RSS_GROWTH_LIMIT_MB: Final = 50.0
RSS_SAMPLE_S: Final = 0.02
# Limits of this module's server: small, so refusing over them is cheap to test.
SESSION_LIMIT: Final = 3
BODY_LIMIT: Final = 1024 * 1024
UPLOAD_LIMIT: Final = 1024 * 1024  # service_under_test's max_upload_bytes
# A refusal by declared size must come before the body: well under this, with no body sent at all.
DECLARED_REFUSAL_LIMIT_S: Final = 2.0
CHUNK: Final = 64 * 1024
SLOT_RELEASE_WAIT_S: Final = 5.0
MB: Final = 1_000_000


def no_server_errors(service: ServiceUnderTest, mark: int) -> None:
    logged = service.log.since(mark)
    assert not logged, "the server logged: " + "; ".join(logged)[:600]


def scraped(service: ServiceUnderTest) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and labels."""
    text = requests.get(f"{service.live.http}/metrics", timeout=HTTP_TIMEOUT_S).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


# -- the flood -------------------------------------------------------------------------------------------


@dataclass
class FloodOutcome:
    sent: int = 0
    seconds: float = 0.0
    results: int = 0
    errors: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    close_code: int | None = None

    def problems(self, label: str) -> list[str]:
        """Every frame accounted for: received as sent, then scored, dropped or failed; a clean close."""
        if self.summary is None:
            return [f"{label}: no summary ({'; '.join(self.errors[:3])})"]
        counts = self.summary["frames"]
        found = [f"{label}: {error}" for error in self.errors[:3]]
        if counts["received"] != self.sent:
            found.append(f"{label}: {self.sent} frames sent, {counts['received']} received")
        if counts["scored"] + counts["dropped"] + counts["failed"] != counts["received"]:
            found.append(f"{label}: frames unaccounted for: {counts}")
        if counts["failed"] or counts["scored"] != self.results:
            found.append(f"{label}: {self.results} results for {counts}")
        if self.close_code != CloseCode.NORMAL:
            found.append(f"{label}: closed with {self.close_code}, not {CloseCode.NORMAL}")
        return found

    @property
    def unaccounted(self) -> int:
        if self.summary is None:
            return self.sent
        counts = self.summary["frames"]
        return abs(self.sent - counts["received"]) + abs(
            counts["received"] - counts["scored"] - counts["dropped"] - counts["failed"]
        )

    def count(self, name: str) -> int:
        return 0 if self.summary is None else int(self.summary["frames"][name])


class RssSampler(threading.Thread):
    """This process's resident set every RSS_SAMPLE_S until stopped; keeps the largest."""

    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak = rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_S):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak


def read_until_summary(ws: ClientConnection, outcome: FloodOutcome, deadline: float) -> None:
    """The reader: counts results and errors until the summary (or the deadline)."""
    try:
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message["type"] == "result":
                outcome.results += 1
            elif message["type"] == "summary":
                outcome.summary = message
                return
            elif message["type"] == "error":
                outcome.errors.append(f"{message['code']}: {message['message']}")
    except (ConnectionClosed, TimeoutError) as exc:
        outcome.errors.append(f"no summary: {type(exc).__name__}")


def flood(service: ServiceUnderTest, frames: list[bytes], total: int, fps: float | None) -> FloodOutcome:
    """Send `total` frames, paced at `fps` (None: as fast as the socket takes them), while a second
    thread reads the answers; then `end`, the summary and the close."""
    outcome = FloodOutcome()
    with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=5) as ws:
        ready = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
        assert ready["type"] == "ready", ready
        deadline = time.monotonic() + (total / (fps or FLOOD_FPS)) * 3 + RECV_TIMEOUT_S
        reader = threading.Thread(
            target=read_until_summary, args=(ws, outcome, deadline), name="flood-reader", daemon=True
        )
        reader.start()
        started = time.perf_counter()
        for i in range(total):
            if fps is not None and (wait := started + i / fps - time.perf_counter()) > 0:
                time.sleep(wait)
            ws.send(frames[i % len(frames)])
            outcome.sent += 1
            if time.monotonic() > deadline:
                break
        outcome.seconds = time.perf_counter() - started
        ws.send(json.dumps({"type": "end"}))
        reader.join(timeout=max(0.1, deadline - time.monotonic()))
        try:
            ws.recv(timeout=RECV_TIMEOUT_S)
        except ConnectionClosed:
            outcome.close_code = ws.close_code
        except TimeoutError:
            outcome.errors.append("the server did not close after the summary")
    return outcome


# -- oversized bodies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyTarget:
    path: str
    limit: int
    code: str
    message: str
    headers: dict[str, str]


TARGETS: Final = [
    BodyTarget("/assess", BODY_LIMIT, "body_too_large", BODY_TOO_LARGE.format(limit=BODY_LIMIT), {}),
    BodyTarget("/cine/frames", BODY_LIMIT, "body_too_large", BODY_TOO_LARGE.format(limit=BODY_LIMIT), {}),
    BodyTarget(
        "/datasets", UPLOAD_LIMIT, "upload_too_large", UPLOAD_TOO_LARGE.format(limit=UPLOAD_LIMIT), AUTH
    ),
]
BOUNDARY: Final = "usqa-reliability-boundary"


def content_type_of(target: BodyTarget) -> str:
    # /datasets reads only multipart (anything else is a 415 before the size matters).
    return f"multipart/form-data; boundary={BOUNDARY}" if target.path == "/datasets" else "image/png"


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def read_answer(sock: socket.socket, started: float) -> RawAnswer:
    """One HTTP/1.1 response with a Content-Length (what the service's JSON errors have)."""
    data = b""
    deadline = started + HTTP_TIMEOUT_S
    while b"\r\n\r\n" not in data:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no full answer within {HTTP_TIMEOUT_S:.0f} s: {data[:200]!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed without a full answer: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and time.perf_counter() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawAnswer(int(status_line.split()[1]), headers, body[:length], time.perf_counter() - started)


def request_head(service: ServiceUnderTest, target: BodyTarget, framing: str) -> bytes:
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: 127.0.0.1:{service.live.port}",
        f"Content-Type: {content_type_of(target)}",
        framing,
        "Connection: close",
        *(f"{k}: {v}" for k, v in target.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def declared_too_large(service: ServiceUnderTest, target: BodyTarget, declared: int) -> RawAnswer:
    """Headers that declare `declared` bytes, and no body: the answer must not wait for it."""
    with socket.create_connection(("127.0.0.1", service.live.port), timeout=HTTP_TIMEOUT_S) as sock:
        started = time.perf_counter()
        sock.sendall(request_head(service, target, f"Content-Length: {declared}"))
        return read_answer(sock, started)


def body_prefix(target: BodyTarget) -> bytes:
    """What a real upload starts with: for /datasets, the multipart head of the `file` part."""
    if target.path != "/datasets":
        return b""
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()


def streamed_too_large(service: ServiceUnderTest, target: BodyTarget, extra: int) -> RawAnswer:
    """A chunked body (no declared size) `extra` bytes over the limit; sending stops once the answer comes."""
    prefix = body_prefix(target)
    with socket.create_connection(("127.0.0.1", service.live.port), timeout=HTTP_TIMEOUT_S) as sock:
        started = time.perf_counter()
        sock.sendall(request_head(service, target, "Transfer-Encoding: chunked"))
        remaining = target.limit + extra
        first = True
        try:
            while remaining > 0 and not select.select([sock], [], [], 0)[0]:
                part = (prefix if first else b"") + bytes(min(CHUNK, remaining))
                first = False
                sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                remaining -= len(part)
            if remaining <= 0:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the rest was on its way: read what it said
        return read_answer(sock, started)


# -- the session limit -----------------------------------------------------------------------------------


def open_session(service: ServiceUnderTest, streams: contextlib.ExitStack) -> ClientConnection:
    """A stream closed when `streams` closes (websockets wants every connection in a `with`)."""
    return streams.enter_context(connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2))


def first_answer(ws: ClientConnection) -> tuple[str, int | None, str]:
    """("ready", None, "") for an accepted stream, ("closed", code, reason) for a refused one."""
    try:
        message = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
    except ConnectionClosed:
        return "closed", ws.close_code, ws.close_reason or ""
    except TimeoutError:
        return "silent", None, ""
    return str(message["type"]), None, ""


def end_session(ws: ClientConnection) -> None:
    """Ask for the summary and read until the server closes (bounded)."""
    try:
        ws.send(json.dumps({"type": "end"}))
        for _ in range(10):
            ws.recv(timeout=RECV_TIMEOUT_S)
    except (ConnectionClosed, TimeoutError):
        pass


def drop_abruptly(ws: ClientConnection) -> None:
    """Vanish without a close frame, as a scanner losing its network does."""
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


def wait_for_free_slots(service: ServiceUnderTest, free: int) -> float:
    """Seconds until at least `free` slots are free (bounded); the limiter is read in-process."""
    limiter = service.live.app.state.service.sessions
    started = time.monotonic()
    while limiter.limit - limiter.open < free:
        if time.monotonic() - started > SLOT_RELEASE_WAIT_S:
            raise AssertionError(f"{limiter.open} of {limiter.limit} slots still taken")
        time.sleep(0.02)
    return time.monotonic() - started


@dataclass
class SessionTally:
    attempts: int = 0
    accepted: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)

    def expect(self, answer: tuple[str, int | None, str], accepted: bool, label: str) -> None:
        self.attempts += 1
        if accepted and answer[0] == "ready":
            self.accepted += 1
        elif not accepted and answer == ("closed", CloseCode.TRY_AGAIN, MSG_SESSIONS_REASON):
            self.refused += 1
        else:
            wanted = "ready" if accepted else f"close {CloseCode.TRY_AGAIN}"
            self.problems.append(f"{label}: expected {wanted}, got {answer}")


def crowd_at_once(service: ServiceUnderTest, tally: SessionTally, crowd: int) -> None:
    """`crowd` streams at once: exactly the limit gets in, whoever is first."""
    answers: list[tuple[str, int | None, str]] = []
    lock = threading.Lock()
    with contextlib.ExitStack() as streams:

        def join_crowd() -> None:
            ws = connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2)
            with lock:
                streams.enter_context(ws)
            answer = first_answer(ws)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=join_crowd, name=f"crowd-{i}") for i in range(crowd)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=RECV_TIMEOUT_S * 2)
        ready = sorted(answers, key=lambda a: a[0] != "ready")
        for i, answer in enumerate(ready):
            tally.expect(answer, i < SESSION_LIMIT, f"a crowd of {crowd}, stream {i}")
        if len(answers) != crowd:
            tally.problems.append(f"a crowd of {crowd}: only {len(answers)} streams answered")
    wait_for_free_slots(service, SESSION_LIMIT)
