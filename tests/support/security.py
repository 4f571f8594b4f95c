"""The security suite's harness (tests/reliability/test_security*.py): a server that records every answer
and log line, the app's routes enumerated with their token guard, the refusal tally and the token variants."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import requests
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute, Mount
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.reliability.conftest import Figures, ServiceUnderTest, cases, error_body_problem
from tests.service.conftest import MODEL_NAME, frame_of_level, png_bytes
from tests.support.hostile_archives import Hostile, build_archive, dataset_files
from usqa.service.api.deps import require_control_token, require_records_token, require_scoring_token
from usqa.service.api.errors import TOKEN_INVALID, TOKEN_MISSING

HTTP_TIMEOUT_S: Final = 15.0
RECV_TIMEOUT_S: Final = 10.0
# Distinctive secrets: any appearance in a response or a log line is a leak, never a coincidence.
SECRET_TOKEN: Final = "usqa-sekret-token-5b1e7c0f93d2"
REDIS_PASSWORD: Final = "s3cr3t-pw-8c4d"
# A closed port on this machine: the job routes answer 503, nothing leaves 127.0.0.1.
UNREACHABLE_REDIS: Final = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"
SECRETS: Final = (SECRET_TOKEN, REDIS_PASSWORD)
WRONG_TOKENS: Final = (
    "not-the-token",
    SECRET_TOKEN[:-1],
    SECRET_TOKEN + "x",
    SECRET_TOKEN.upper(),
    "x" * 4096,
)
# Routes anyone may call, each with its reason; any other route must check a token.
PUBLIC_ROUTES: Final = {
    "/": "the live page (static HTML; it calls the scoring routes, which check the token when required)",
    "/healthz": "liveness probe",
    "/readyz": "readiness probe",
    "/metrics": "Prometheus scrape",
    "/openapi.json": "the API description",
    "/asyncapi.json": "the WebSocket protocol's description",
    "/docs": "the API description",
    "/docs/oauth2-redirect": "the API description",
    "/redoc": "the API description",
    "/docs-assets": "Swagger UI's and ReDoc's scripts and styles, from an installed package",
    "/static": "the live page's assets",
    "/protocol.js": "the live page's protocol words (verdicts, message types, close codes)",
}
# WebSocket routes check the token in the handler (browsers cannot send headers; `?token=` is accepted).
SCORING_WEBSOCKETS: Final = {"/ws/scan"}
PATH_VALUES: Final = {
    "name": MODEL_NAME,
    "version": "champion",
    "dataset_id": "ds-0123456789abcdef",
    "job_id": "0" * 32,
    "session_id": "0" * 12,
    "rank": "0",
}
# Loggers of the test's own clients: what they log is the client's business, not the server's.
CLIENT_LOGGERS: Final = ("urllib3", "requests", "websockets.client", "charset_normalizer")
# uvicorn's loggers: "uvicorn.error" propagates to "uvicorn"; "uvicorn" and "uvicorn.access" do not propagate.
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")
UVICORN_HANDLED: Final = ("uvicorn", "uvicorn.access")
# -- servers and what they say ---------------------------------------------------------------------------


class EveryRecord(logging.Handler):
    """Every log record at every level, formatted with its traceback, from everything but the clients."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, str]] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):
            return
        try:
            text = self.format(record)
        except Exception:  # a record whose arguments do not format: judge its parts
            text = f"{record.name} {record.msg!r} {record.args!r}"
        with self._lines_lock:
            self.lines.append((record.name, text))

    def snapshot(self) -> list[tuple[str, str]]:
        with self._lines_lock:
            return list(self.lines)


@contextlib.contextmanager
def every_record(handler: EveryRecord, *names: str) -> Iterator[None]:
    """Attach `handler` to the named loggers at DEBUG, and restore their levels afterwards."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@dataclass
class Transcript:
    """Every answer the tests got from a server: status, headers and body, for the secrets check."""

    answers: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.answers.append((label, text))


@dataclass
class Secured:
    """A server with a distinctive token, scoring behind the token and a Redis URL with a password."""

    service: ServiceUnderTest
    log: EveryRecord
    transcript: Transcript
    session: requests.Session
    _levels: dict[str, int] = field(default_factory=dict)

    @property
    def data_root(self) -> Path:
        return self.service.root / "data"

    def listen(self) -> None:
        """(Re)attach the log handler to uvicorn's loggers at DEBUG: building any uvicorn server (another
        test's) replaces their handlers and levels, so this runs before each request."""
        for name in UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            self._levels.setdefault(name, logger.level)
            logger.setLevel(logging.DEBUG)
            if name in UVICORN_HANDLED and self.log not in logger.handlers:
                logger.addHandler(self.log)

    def stop_listening(self) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).removeHandler(self.log)
            logging.getLogger(name).setLevel(level)

    def call(self, method: str, path: str, label: str, **kwargs: Any) -> requests.Response:
        self.listen()
        response = self.session.request(
            method, f"{self.service.live.http}{path}", timeout=HTTP_TIMEOUT_S, allow_redirects=False, **kwargs
        )
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.transcript.add(
            f"{label}: {method} {path} -> {response.status_code}", headers + "\n" + response.text
        )
        return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


TOKEN: Final = bearer(SECRET_TOKEN)


# -- the routes, enumerated from the app -----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    path: str  # the path template, as the app declares it
    method: str  # "WS" for a WebSocket route
    guard: str  # "control", "scoring" or "public"

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def concrete(self) -> str:
        return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "x"), self.path)


def dependency_calls(dependant: Dependant | None) -> set[Callable[..., Any]]:
    """Every dependency a route resolves, however deeply nested."""
    found: set[Callable[..., Any]] = set()
    for sub in dependant.dependencies if dependant is not None else []:
        if sub.call is not None:
            found.add(sub.call)
        found |= dependency_calls(sub)
    return found


def routes_of(app: FastAPI) -> list[Any]:
    """The app's routes with their effective dependencies (FastAPI composes included routers lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: app.routes are the routes themselves
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def endpoints_of(app: FastAPI) -> tuple[list[Endpoint], list[str]]:
    """Every (method, path) of the app with its guard, and the routes that have none but should."""
    endpoints: list[Endpoint] = []
    unguarded: list[str] = []
    for route in routes_of(app):
        original: BaseRoute = getattr(route, "original_route", route)
        path = str(route.path)
        if isinstance(original, Mount):
            if path not in PUBLIC_ROUTES:
                unguarded.append(f"mount {path}")
            continue
        if isinstance(original, APIWebSocketRoute):
            guard = "scoring" if path in SCORING_WEBSOCKETS else "public"
            if guard == "public":
                unguarded.append(f"WebSocket {path}")
            endpoints.append(Endpoint(path, "WS", guard))
            continue
        calls = (
            dependency_calls(getattr(route, "dependant", None)) if isinstance(original, APIRoute) else set()
        )
        if require_control_token in calls:
            guard = "control"
        elif require_scoring_token in calls:
            guard = "scoring"
        elif require_records_token in calls:
            guard = "records"  # session reports and captures: the token whenever one is configured
        else:
            guard = "public"
            if path not in PUBLIC_ROUTES:
                unguarded.append(f"{sorted(route.methods or [])} {path}")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            endpoints.append(Endpoint(path, method, guard))
    return endpoints, unguarded


@dataclass
class AuthTally:
    cases: int = 0
    problems: list[str] = field(default_factory=list)

    def expect_refusal(
        self, label: str, response: requests.Response, status: int, code: str, detail: str
    ) -> None:
        self.cases += 1
        body_problem = error_body_problem(status, response.headers.get("content-type"), response.content)
        if response.status_code != status:
            self.problems.append(
                f"{label}: {response.status_code} {response.text[:160]!r}, expected {status}"
            )
            return
        if body_problem is not None:
            self.problems.append(f"{label}: {body_problem}")
            return
        payload = response.json()
        if (payload["code"], payload["detail"]) != (code, detail):
            self.problems.append(f"{label}: {payload}, expected {code}")
        if status == 401 and response.headers.get("www-authenticate") != "Bearer":
            self.problems.append(f"{label}: 401 without 'WWW-Authenticate: Bearer'")

    def expect_passed(
        self, label: str, response: requests.Response, statuses: set[int] | None = None
    ) -> None:
        """The token was accepted: whatever the route says next, it is not a refusal of the token."""
        self.cases += 1
        refused = response.status_code in (401, 403)
        if refused or (statuses is not None and response.status_code not in statuses):
            self.problems.append(f"{label}: {response.status_code} {response.text[:160]!r} with the token")

    def finish(self, figures: Figures, prefix: str) -> None:
        figures.count(f"{prefix}.cases", self.cases)
        figures.count(f"{prefix}.wrong_answers", len(self.problems))
        assert self.cases > 0
        assert not self.problems, f"{len(self.problems)} problems in {self.cases} cases:\n" + "\n".join(
            self.problems[:10]
        )


def request_kwargs(endpoint: Endpoint) -> dict[str, Any]:
    """A body each route can take, so a refusal is about the token and nothing else."""
    if endpoint.method != "POST":
        return {}
    if endpoint.path.endswith("/promote"):
        return {"json": {"ref": "1"}}
    if endpoint.path.endswith("/rollback") or endpoint.path == "/retrain":
        return {"json": {"dataset": PATH_VALUES["dataset_id"], "task": "classify", "config": "debug"}}
    if endpoint.path == "/datasets":
        archive = build_archive("zip", dataset_files(), Hostile("none", "extra/ok.txt"), first=False)
        return {"files": {"file": ("set.zip", archive, "application/zip")}}
    return {"data": png_bytes(frame_of_level(120, (64, 64))), "headers": {"Content-Type": "image/png"}}


def with_headers(endpoint: Endpoint, headers: dict[str, str]) -> dict[str, Any]:
    """The route's request, with `headers` added to its own."""
    kwargs = request_kwargs(endpoint)
    kwargs["headers"] = {**kwargs.get("headers", {}), **headers}
    return kwargs


def refusal_headers() -> list[tuple[str, dict[str, str], str, str]]:
    """(label, headers, code, detail) of every way to not present the token."""
    variants = [
        ("no token", {}, "token_missing", TOKEN_MISSING),
        ("empty bearer", {"Authorization": "Bearer "}, "token_missing", TOKEN_MISSING),
        ("basic scheme", {"Authorization": f"Basic {SECRET_TOKEN}"}, "token_missing", TOKEN_MISSING),
        ("token without scheme", {"Authorization": SECRET_TOKEN}, "token_missing", TOKEN_MISSING),
    ]
    variants += [
        (f"wrong token {i}", bearer(t), "token_invalid", TOKEN_INVALID) for i, t in enumerate(WRONG_TOKENS)
    ]
    return variants[: cases(5, len(variants))]


def ws_answer(url: str, headers: dict[str, str] | None = None) -> tuple[str, int | None, str]:
    """("ready", None, "") for an accepted stream, ("closed", code, reason) for a refused one."""
    with connect(url, additional_headers=headers, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
        try:
            message = ws.recv(timeout=RECV_TIMEOUT_S)
        except ConnectionClosed:
            return "closed", ws.close_code, ws.close_reason or ""
        except TimeoutError:
            return "silent", None, ""
        return ("ready" if '"ready"' in str(message) else str(message)[:80]), None, ""


def upload(secured: Secured, archive: bytes, filename: str, label: str) -> requests.Response:
    return secured.call(
        "POST",
        "/datasets",
        label,
        headers=TOKEN,
        files={"file": (filename, archive, "application/octet-stream")},
    )
