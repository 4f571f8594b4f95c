"""Security: the bearer token guards every control route (enumerated from the app, not listed by hand) and,
when configured, the scoring routes; data-set uploads cannot write outside the data root (zip slip); the
service refuses to start in production without a token; no secret reaches a response or the log; the
container images run as a non-root user.

Servers are real uvicorn servers on 127.0.0.1 in this process; the Redis URL points at a closed port of
127.0.0.1, so nothing leaves the machine. Every loop is bounded by a count and a timeout.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import requests
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute, Mount
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.api.app import TOKEN_FOR_SCORING_WITHOUT_TOKEN
from usqa.service.api.deps import require_control_token, require_records_token, require_scoring_token
from usqa.service.api.errors import (
    CONTROL_DISABLED,
    TOKEN_INVALID,
    TOKEN_MISSING,
    TOKEN_REQUIRED_IN_PRODUCTION,
    ConfigurationError,
)
from usqa.service.api.scan_messages import MSG_TOKEN_REASON
from usqa.service.datasets.uploads import MSG_ESCAPES, MSG_LINK

from ..service.conftest import MODEL_NAME, frame_of_level, make_settings, png_bytes
from .conftest import (
    REPO_ROOT,
    Figures,
    ServiceUnderTest,
    cases,
    error_body_problem,
    service_under_test,
    unclear_reason,
)

SECTION = "security"

HTTP_TIMEOUT_S: Final = 15.0
RECV_TIMEOUT_S: Final = 10.0
CLI_TIMEOUT_S: Final = 60.0
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


@pytest.fixture(scope="module")
def secured(reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    handler = EveryRecord()
    # The root logger from before the start (the lifespan's records); uvicorn's own loggers after it,
    # since uvicorn's logging configuration replaces their handlers when a server is built.
    with contextlib.ExitStack() as stack:
        stack.enter_context(every_record(handler, ""))
        running = stack.enter_context(
            service_under_test(
                reliability_registry,
                tmp_path_factory.mktemp("secured"),
                api_token=SECRET_TOKEN,
                require_token_for_scoring=True,
                redis_url=UNREACHABLE_REDIS,
            )
        )
        secured = Secured(running, handler, Transcript(), stack.enter_context(requests.Session()))
        secured.listen()
        stack.callback(secured.stop_listening)
        yield secured


@pytest.fixture(scope="module")
def tokenless(
    reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceUnderTest]:
    """A dev server without any token: control routes answer 403, scoring is open."""
    with service_under_test(
        reliability_registry, tmp_path_factory.mktemp("tokenless"), api_token=None
    ) as running:
        yield running


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


def test_every_route_is_public_by_intent_or_checks_the_token(figures: Figures) -> None:
    app = create_app(make_settings(REPO_ROOT / "models", api_token=SECRET_TOKEN))
    endpoints, unguarded = endpoints_of(app)
    figures.peak("auth.routes", len(endpoints))
    figures.peak("auth.control_routes", sum(e.guard == "control" for e in endpoints))
    figures.peak("auth.scoring_routes", sum(e.guard == "scoring" for e in endpoints))
    figures.count("auth.unguarded_routes", len(unguarded))
    assert not unguarded, f"routes without a token check that are not public by intent: {unguarded}"
    control = {e.label for e in endpoints if e.guard == "control"}
    assert {
        "POST /models/{name}/promote",
        "POST /datasets",
        "POST /retrain",
        "DELETE /jobs/{job_id}",
    } <= control
    assert {"POST /assess", "WS /ws/scan"} <= {e.label for e in endpoints if e.guard == "scoring"}
    assert {
        "GET /sessions",
        "GET /sessions/{session_id}",
        "GET /sessions/{session_id}/captures/{rank}.png",
    } <= {e.label for e in endpoints if e.guard == "records"}


def test_control_routes_refuse_without_the_token(secured: Secured, figures: Figures) -> None:
    endpoints, _ = endpoints_of(secured.service.live.app)
    control = [e for e in endpoints if e.guard == "control"]
    tally = AuthTally()
    mark = secured.service.log.mark()
    for endpoint in control:
        for label, headers, code, detail in refusal_headers():
            response = secured.call(
                endpoint.method, endpoint.concrete(), label, **with_headers(endpoint, headers)
            )
            tally.expect_refusal(f"{endpoint.label} [{label}]", response, 401, code, detail)
        response = secured.call(
            endpoint.method, endpoint.concrete(), "token", **with_headers(endpoint, TOKEN)
        )
        tally.expect_passed(f"{endpoint.label} [token]", response)
    # Without the token, a body of the wrong shape or no JSON at all changes nothing: the token comes first.
    for endpoint in [e for e in control if e.method == "POST" and "json" in request_kwargs(e)]:
        for label, body in [("wrong shape", b'{"unexpected": [1, 2]}'), ("not JSON", b"{not json")]:
            response = secured.call(
                endpoint.method,
                endpoint.concrete(),
                label,
                headers={"Content-Type": "application/json"},
                data=body,
            )
            tally.expect_refusal(
                f"{endpoint.label} [no token, {label} body]", response, 401, "token_missing", TOKEN_MISSING
            )
    figures.peak("auth.control_routes_checked", len(control))
    tally.finish(figures, "auth.control")
    logged = secured.service.log.since(mark)
    assert not logged, f"refusing tokens logged errors: {logged[:3]}"


def test_control_routes_are_disabled_without_a_configured_token(
    tokenless: ServiceUnderTest, figures: Figures
) -> None:
    endpoints, _ = endpoints_of(tokenless.live.app)
    control = [e for e in endpoints if e.guard == "control"]
    tally = AuthTally()
    with requests.Session() as session:
        for endpoint in control:
            for label, headers in [
                ("no token", {}),
                ("some token", TOKEN),
                ("basic", {"Authorization": "Basic x"}),
            ]:
                response = session.request(
                    endpoint.method,
                    f"{tokenless.live.http}{endpoint.concrete()}",
                    timeout=HTTP_TIMEOUT_S,
                    **with_headers(endpoint, headers),
                )
                tally.expect_refusal(
                    f"{endpoint.label} [{label}]", response, 403, "control_disabled", CONTROL_DISABLED
                )
        # Scoring stays open on a server that does not require a token for it.
        for endpoint in [e for e in endpoints if e.guard == "scoring" and e.method != "WS"]:
            response = session.request(
                endpoint.method,
                f"{tokenless.live.http}{endpoint.concrete()}",
                timeout=HTTP_TIMEOUT_S,
                params={"frames": 2} if endpoint.path == "/cine/demo" else None,
                **request_kwargs(endpoint),
            )
            tally.expect_passed(f"{endpoint.label} [open scoring]", response, {200})
    with connect(tokenless.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
        tally.cases += 1
        if '"ready"' not in str(ws.recv(timeout=RECV_TIMEOUT_S)):
            tally.problems.append("WS /ws/scan [open scoring]: no ready message")
    tally.finish(figures, "auth.control_disabled")


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


def test_scoring_routes_need_the_token_when_configured(secured: Secured, figures: Figures) -> None:
    endpoints, _ = endpoints_of(secured.service.live.app)
    scoring = [e for e in endpoints if e.guard == "scoring"]
    tally = AuthTally()
    for endpoint in [e for e in scoring if e.method != "WS"]:
        params = {"frames": 2} if endpoint.path == "/cine/demo" else None
        for label, headers, code, detail in refusal_headers():
            kwargs = with_headers(endpoint, headers)
            response = secured.call(endpoint.method, endpoint.concrete(), label, params=params, **kwargs)
            tally.expect_refusal(f"{endpoint.label} [{label}]", response, 401, code, detail)
        kwargs = with_headers(endpoint, TOKEN)
        response = secured.call(endpoint.method, endpoint.concrete(), "token", params=params, **kwargs)
        tally.expect_passed(f"{endpoint.label} [token]", response, {200})
    secured.listen()
    for endpoint in [e for e in scoring if e.method == "WS"]:
        url = f"ws://127.0.0.1:{secured.service.live.port}{endpoint.concrete()}"
        refusals: list[tuple[str, str, dict[str, str] | None]] = [
            (label, url, headers) for label, headers, _, _ in refusal_headers()
        ]
        refusals.append(("wrong query token", f"{url}?token=not-the-token", None))
        for label, target, ws_headers in refusals:
            tally.cases += 1
            answer = ws_answer(target, ws_headers)
            if answer != ("closed", CloseCode.POLICY, MSG_TOKEN_REASON):
                tally.problems.append(
                    f"{endpoint.label} [{label}]: {answer}, expected close {CloseCode.POLICY}"
                )
        accepted: list[tuple[str, str, dict[str, str] | None]] = [
            ("header token", url, TOKEN),
            ("query token", f"{url}?token={SECRET_TOKEN}", None),
        ]
        for label, target, ws_headers in accepted:
            tally.cases += 1
            answer = ws_answer(target, ws_headers)
            if answer[0] != "ready":
                tally.problems.append(f"{endpoint.label} [{label}]: {answer} with the token")
    figures.peak("auth.scoring_routes_checked", len(scoring))
    tally.finish(figures, "auth.scoring")


def test_session_routes_need_the_token_when_configured(secured: Secured, figures: Figures) -> None:
    """Session reports and captures hold patient images: refused without the token, whatever scoring needs."""
    endpoints, _ = endpoints_of(secured.service.live.app)
    records = [e for e in endpoints if e.guard == "records"]
    tally = AuthTally()
    for endpoint in records:
        for label, headers, code, detail in refusal_headers():
            response = secured.call(endpoint.method, endpoint.concrete(), label, headers=headers)
            tally.expect_refusal(f"{endpoint.label} [{label}]", response, 401, code, detail)
        response = secured.call(endpoint.method, endpoint.concrete(), "token", headers=TOKEN)
        tally.expect_passed(f"{endpoint.label} [token]", response, {200, 404})
    figures.peak("auth.session_routes_checked", len(records))
    tally.finish(figures, "auth.sessions")


# -- zip slip ----------------------------------------------------------------------------------------------


def dataset_files(seed: int = 0) -> dict[str, bytes]:
    """A valid little data set: labels.csv and four PNG frames."""
    files = {
        f"frames/f{i}.png": png_bytes(frame_of_level(50 + 40 * i, (32, 32), seed=seed + i)) for i in range(4)
    }
    files["labels.csv"] = b"frame,label\n" + b"".join(f"frames/f{i}.png,{i % 2}\n".encode() for i in range(4))
    return files


@dataclass(frozen=True)
class Hostile:
    """One hostile archive member: where it goes and what the refusal must name."""

    label: str
    name: str
    kind: str = "file"  # file, symlink, hardlink, fifo, chardev
    target: str = ""  # a link's target
    refusal: str = MSG_ESCAPES
    formats: tuple[str, ...] = ("zip", "tar", "tar.gz")


def hostile_members(data_root: Path, outside: Path) -> list[Hostile]:
    """Members that would land outside the data-set folder, or let a later member do so. Each lands, if
    written, where the test looks: the data root, its parent, or the empty folder `outside`."""
    # Up past the file-system root (where climbing stops), then down into `outside`.
    deep_climb = "../" * (len(data_root.parts) + 3) + f"{outside.relative_to(outside.anchor)}/escape.txt"
    return [
        Hostile("parent", "../escape.txt"),
        Hostile("grandparent", "../../escape.txt"),
        Hostile("deep climb", deep_climb),
        Hostile("climb inside a path", "frames/../../../escape.txt"),
        Hostile("absolute into the parent of the data root", f"{data_root.parent}/escape.txt"),
        Hostile("absolute elsewhere", str(outside / "escape.txt")),
        Hostile("backslash climb", "..\\..\\escape.txt"),
        Hostile("drive letter", "C:/escape.txt"),
        Hostile("symlink to the parent", "climb", "symlink", "../..", MSG_LINK),
        Hostile("symlink to an absolute file", "frames/f9.png", "symlink", "/etc/passwd", MSG_LINK),
        Hostile("hardlink out", "frames/f8.png", "hardlink", "../../escape.txt", MSG_LINK, ("tar", "tar.gz")),
        Hostile(
            "hardlink to an absolute file", "frames/f7.png", "hardlink", "/etc/passwd", MSG_LINK, ("tar",)
        ),
        Hostile("fifo", "frames/pipe", "fifo", "", MSG_LINK, ("tar",)),
        Hostile("character device", "frames/tty", "chardev", "", MSG_LINK, ("tar",)),
    ]


def build_archive(fmt: str, files: dict[str, bytes], hostile: Hostile, first: bool) -> bytes:
    """A valid data set plus one hostile member, first or last (after good files were unpacked)."""
    buffer = io.BytesIO()
    payload = b"escaped\n"
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            good = list(files.items())

            def add_hostile() -> None:
                info = zipfile.ZipInfo(hostile.name)
                info.create_system = 3  # Unix: the type bits below are read
                if hostile.kind == "symlink":
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    archive.writestr(info, hostile.target)
                else:
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    archive.writestr(info, payload)
                if hostile.kind == "symlink":  # the second step of a link attack: write through it
                    archive.writestr(f"{hostile.name}/escape.txt", payload)

            if first:
                add_hostile()
            for name, data in good:
                archive.writestr(name, data)
            if not first:
                add_hostile()
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz" if fmt == "tar.gz" else "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        def add_hostile() -> None:
            info = tarfile.TarInfo(hostile.name)
            if hostile.kind == "file":
                add(hostile.name, payload)
                return
            info.type = {
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chardev": tarfile.CHRTYPE,
            }[hostile.kind]
            info.linkname = hostile.target
            tar.addfile(info)
            if hostile.kind == "symlink":
                add(f"{hostile.name}/escape.txt", payload)

        if first:
            add_hostile()
        for name, data in files.items():
            add(name, data)
        if not first:
            add_hostile()
    return buffer.getvalue()


def tree(folder: Path, skip: Path | None = None) -> dict[str, int]:
    """Every path under `folder` (but `skip`) with its size: what an escape would change."""
    found: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        found[str(path.relative_to(folder))] = path.lstat().st_size
    return found


def upload(secured: Secured, archive: bytes, filename: str, label: str) -> requests.Response:
    return secured.call(
        "POST",
        "/datasets",
        label,
        headers=TOKEN,
        files={"file": (filename, archive, "application/octet-stream")},
    )


def test_uploads_cannot_write_outside_the_data_root(
    secured: Secured, figures: Figures, tmp_path: Path
) -> None:
    data_root = secured.data_root
    root = secured.service.root  # the data root's parent: registry, jobs, work
    outside = tmp_path / "outside"
    outside.mkdir()
    mark = secured.service.log.mark()
    # A valid upload works, so every refusal below is about the hostile member alone.
    created = upload(
        secured,
        build_archive("zip", dataset_files(), Hostile("none", "extra/ok.txt"), False),
        "ok.zip",
        "valid",
    )
    assert created.status_code in (200, 201), created.text  # 200: an earlier test sent the same archive
    baseline = sorted(p.name for p in data_root.iterdir())
    assert created.json()["id"] in baseline

    problems: list[str] = []
    refused = escaped = leftovers = archives = 0
    before_root = tree(root, skip=data_root)
    for i, hostile in enumerate(hostile_members(data_root, outside)):
        for fmt in hostile.formats[: cases(2, 3)]:
            for first in (False, True)[: cases(1, 2)]:
                archives += 1
                label = f"{hostile.label} ({fmt}, {'first' if first else 'last'})"
                archive = build_archive(fmt, dataset_files(seed=10 * (i + 1)), hostile, first)
                response = upload(secured, archive, f"hostile.{fmt}", label)
                expected = hostile.refusal.format(name=hostile.name)
                detail = (
                    response.json().get("detail")
                    if response.headers.get("content-type") == "application/json"
                    else None
                )
                if response.status_code != 400 or detail != expected:
                    problems.append(
                        f"{label}: {response.status_code} {response.text[:200]!r}, expected 400 {expected!r}"
                    )
                else:
                    refused += 1
                problem = error_body_problem(
                    response.status_code, response.headers.get("content-type"), response.content
                )
                if response.status_code >= 400 and problem is not None:
                    problems.append(f"{label}: {problem}")
                after_root = tree(root, skip=data_root)
                escapes = sorted(set(after_root) - set(before_root)) + [str(p) for p in outside.iterdir()]
                if escapes or after_root != before_root:
                    escaped += 1
                    problems.append(f"{label}: written outside the data root: {escapes[:5]}")
                    before_root = after_root
                visible = sorted(p.name for p in data_root.iterdir())
                if visible != baseline:
                    leftovers += 1
                    problems.append(f"{label}: the data root now holds {visible}")
                    baseline = visible
    # Links and climbs in labels.csv: a read outside the folder is refused by validation (422).
    for target in ["../../escape.png", "/etc/passwd", "frames/../../labels.csv"][: cases(2, 3)]:
        archives += 1
        files = dataset_files(seed=99)
        files["labels.csv"] += f"{target},1\n".encode()
        response = upload(
            secured, build_archive("zip", files, Hostile("none", "extra/ok.txt"), False), "climb.zip", target
        )
        payload = response.json()
        if response.status_code != 422 or "outside the data-set folder" not in payload.get("detail", ""):
            problems.append(f"labels.csv naming {target}: {response.status_code} {response.text[:200]!r}")
        elif unclear_reason(payload["detail"]) is not None:
            problems.append(f"labels.csv naming {target}: {unclear_reason(payload['detail'])}")
        else:
            refused += 1
    figures.count("zipslip.archives", archives)
    figures.count("zipslip.refused", refused)
    figures.count("zipslip.escaped_writes", escaped)
    figures.count("zipslip.leftover_folders", leftovers)
    figures.count("zipslip.wrong_answers", len(problems))
    assert not problems, f"{len(problems)} problems in {archives} hostile uploads:\n" + "\n".join(
        problems[:10]
    )
    logged = secured.service.log.since(mark)
    assert not logged, f"refusing archives logged errors: {logged[:3]}"


# -- production without a token ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_production_refuses_to_start_without_a_token(
    reliability_registry: Path, figures: Figures, tmp_path: Path
) -> None:
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"environment": "production", "api_token": None}, TOKEN_REQUIRED_IN_PRODUCTION),
        ({"environment": "production", "api_token": ""}, TOKEN_REQUIRED_IN_PRODUCTION),
        ({"require_token_for_scoring": True, "api_token": None}, TOKEN_FOR_SCORING_WITHOUT_TOKEN),
    ]
    for overrides, message in refusals:
        with pytest.raises(ConfigurationError) as refused:
            create_app(make_settings(reliability_registry, **overrides))
        assert str(refused.value) == message
        assert unclear_reason(str(refused.value)) is None
    create_app(make_settings(reliability_registry, environment="production", api_token=SECRET_TOKEN))

    # The real command, as the API image runs it: it must exit with the message and never listen.
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("USQA_")}
    environment.update(
        USQA_ENVIRONMENT="production", USQA_REGISTRY=str(reliability_registry), USQA_DATA_ROOT=str(tmp_path)
    )
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "usqa.service.api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listened = False
    try:
        while process.poll() is None and time.monotonic() - started < CLI_TIMEOUT_S:
            listened = listened or listening(port)
            time.sleep(0.05)
        listened = listened or listening(port)
    finally:
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate(timeout=10)
    seconds = time.monotonic() - started
    figures.count("production.refusals", len(refusals) + 1)
    figures.count("production.started_without_token", int(process.returncode == 0 or listened))
    figures.peak("production.cli_refusal_s", round(seconds, 2))
    assert process.returncode not in (0, None, -9), f"exit {process.returncode}: {stderr[-800:]}"
    assert TOKEN_REQUIRED_IN_PRODUCTION in stderr, stderr[-800:]
    assert not listened, f"the refused server listened on 127.0.0.1:{port}"
    assert "Traceback (most recent call last)" not in stderr, "the refusal is a traceback, not a message"
    assert stdout.strip() == "" or TOKEN_REQUIRED_IN_PRODUCTION not in stdout


# -- secrets -----------------------------------------------------------------------------------------------


def test_no_secret_in_responses_or_logs(secured: Secured, figures: Figures) -> None:
    """Failing requests of every kind against the secured server, then every answer and log line of the
    module is searched for the token and the Redis password."""
    hex_id = "0123456789abcdef" * 2
    failing: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/jobs", {"headers": TOKEN}),
        ("GET", f"/jobs/{hex_id}", {"headers": TOKEN}),
        ("DELETE", f"/jobs/{hex_id}", {"headers": TOKEN}),
        ("GET", f"/jobs/{hex_id}/events", {"headers": TOKEN}),
        ("GET", "/jobs/not-an-id", {"headers": TOKEN}),
        (
            "POST",
            "/retrain",
            {"headers": TOKEN, "json": {"dataset": "ds-0123456789abcdef", "task": "classify"}},
        ),
        ("POST", "/retrain", {"headers": TOKEN, "json": {"dataset": "x", "task": "nope", "extra": 1}}),
        ("POST", "/retrain", {"headers": TOKEN, "json": {"task": "classify", "overrides": {"name": "x"}}}),
        ("POST", f"/models/{MODEL_NAME}/promote", {"headers": TOKEN, "json": {"ref": "999"}}),
        ("POST", f"/models/{MODEL_NAME}/rollback", {"headers": TOKEN, "json": {"alias": "nothing"}}),
        ("GET", "/models/no-such-model", {"headers": TOKEN}),
        ("POST", "/datasets", {"headers": TOKEN, "data": b"not multipart"}),
        (
            "POST",
            "/datasets",
            {"headers": TOKEN, "files": {"file": ("x.zip", b"PK\x03\x04broken", "application/zip")}},
        ),
        ("GET", "/datasets/ds-ffffffffffffffff", {"headers": TOKEN}),
        ("POST", "/assess", {"headers": TOKEN, "data": b"\x89PNG broken"}),
        ("POST", "/assess", {"headers": {**TOKEN, "Content-Type": "application/octet-stream"}, "data": b"x"}),
        ("GET", "/no/such/path", {"headers": TOKEN}),
        ("PUT", "/assess", {"headers": TOKEN}),
        ("GET", "/jobs", {"headers": {"Authorization": "Bearer usqa-sekret"}}),
        ("GET", "/jobs", {}),
        ("POST", "/assess", {"data": png_bytes(frame_of_level(90, (32, 32)))}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
    ]
    # The one call that reaches Redis with a job: a data set exists, the queue does not answer.
    dataset = upload(
        secured,
        build_archive("zip", dataset_files(seed=500), Hostile("none", "more/ok.txt"), False),
        "s.zip",
        "setup",
    )
    assert dataset.status_code in (200, 201), dataset.text
    failing.append(
        (
            "POST",
            "/retrain",
            {
                "headers": TOKEN,
                "json": {"dataset": dataset.json()["id"], "task": "classify", "config": "debug"},
            },
        )
    )
    # An alias move announces on Redis, which fails and is logged: the log line must not carry the URL.
    failing.append(("POST", f"/models/{MODEL_NAME}/promote", {"headers": TOKEN, "json": {"ref": "1"}}))
    statuses: dict[int, int] = {}
    for method, path, kwargs in failing:
        response = secured.call(method, path, "secrets", **kwargs)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(503, 0) >= 5, f"the job routes did not answer 503 without Redis: {statuses}"
    secured.listen()
    for label, headers in [("no token", None), ("query token", None), ("header token", TOKEN)]:
        query = f"?token={SECRET_TOKEN}" if label == "query token" else ""
        ws_answer(f"{secured.service.live.ws}{query}", headers)
    time.sleep(0.2)  # the closing sessions' last log lines

    leaks: list[str] = []
    answers = secured.transcript.answers
    for label, text in answers:
        for secret in SECRETS:
            if secret in text:
                leaks.append(
                    f"{label}: the answer holds {'the token' if secret == SECRET_TOKEN else 'the Redis password'}"
                )
    lines = secured.log.snapshot()
    for name, text in lines:
        for secret in SECRETS:
            if secret in text:
                leaks.append(f"log {name}: {text[:240]!r}")
    figures.count("secrets.responses_checked", len(answers))
    figures.count("secrets.log_lines_checked", len(lines))
    figures.count("secrets.leaks", len(leaks))
    assert any("redis://:***@127.0.0.1:1/0" in text for _, text in answers), (
        "the 503s no longer name the queue"
    )
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks[:10])


# -- containers --------------------------------------------------------------------------------------------


def dockerfile_users(dockerfile: Path) -> list[str]:
    """The USER instructions of a Dockerfile, in order (continuation lines joined, comments dropped)."""
    users: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "USER":
            users.append(arguments.strip())
    return users


def test_containers_run_as_non_root(figures: Figures) -> None:
    import yaml

    dockerfiles = sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))
    root_images = []
    for dockerfile in dockerfiles:
        users = dockerfile_users(dockerfile)
        final = users[-1].split(":")[0] if users else "root"
        if final in ("root", "0"):
            root_images.append(dockerfile.name)
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    overrides = [
        name
        for name, service in compose["services"].items()
        if str(service.get("user", "")).split(":")[0] in ("root", "0") or service.get("privileged")
    ]
    figures.peak("containers.images", len(dockerfiles))
    figures.count("containers.root_images", len(root_images))
    figures.count("containers.compose_root_overrides", len(overrides))
    assert dockerfiles, "no docker/*.Dockerfile"
    assert not root_images, f"images whose final USER is root: {root_images}"
    assert not overrides, f"compose services run as root or privileged: {overrides}"
