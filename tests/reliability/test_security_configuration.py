"""Security of the configuration: every route is public by intent or checks a token; a server without a
token disables the control routes; production refuses to start without a token; the container images run
as a non-root user. The token checks against a running secured server are in test_security.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import requests
from websockets.sync.client import connect

from tests.support.security import (
    HTTP_TIMEOUT_S,
    RECV_TIMEOUT_S,
    SECRET_TOKEN,
    TOKEN,
    AuthTally,
    endpoints_of,
    request_kwargs,
    with_headers,
)
from usqa.service.api import create_app
from usqa.service.api.app import TOKEN_FOR_SCORING_WITHOUT_TOKEN
from usqa.service.api.errors import (
    CONTROL_DISABLED,
    TOKEN_REQUIRED_IN_PRODUCTION,
    TOKEN_TOO_WEAK_IN_PRODUCTION,
    ConfigurationError,
)

from ..service.conftest import make_settings
from .conftest import REPO_ROOT, Figures, ServiceUnderTest, service_under_test, unclear_reason

SECTION = "security"

CLI_TIMEOUT_S: Final = 60.0


@pytest.fixture(scope="module")
def tokenless(
    reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceUnderTest]:
    """A dev server without any token: control routes answer 403, scoring is open."""
    with service_under_test(
        reliability_registry, tmp_path_factory.mktemp("tokenless"), api_token=None
    ) as running:
        yield running


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
        ({"environment": "production", "api_token": "x"}, TOKEN_TOO_WEAK_IN_PRODUCTION),
        ({"environment": "production", "api_token": " " * 40}, TOKEN_TOO_WEAK_IN_PRODUCTION),
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
