"""Decode budgets (issue 28): small hostile DICOM files that decode to far more than they look are refused
on /assess, /cine/frames and /ws/scan in under a second, with resident memory growing under 100 MB.

The files (tests/support/hostile_dicom.py): native pixel data holding 16,384 frames while NumberOfFrames
says 1; the same deflated (32x32 frames, 16 MiB inflated from 17 KB); 40 JPEG 2000 frames declared
4096x4096 in 3 KB. The server runs with the production limits (5,000 frames, 128 Mi decoded pixels).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final

import pytest
import requests
from websockets.sync.client import connect

from tests.support import hostile_dicom
from tests.support.resource_probes import RssSampler, no_server_errors, rss_mb

from .conftest import AUTH, Figures, ServiceUnderTest, error_body_problem

SECTION = "resource_bounds"
REFUSAL_LIMIT_S: Final = 1.0
RSS_LIMIT_MB: Final = 100.0
TIMEOUT_S: Final = 30.0
HOSTILE: Final[dict[str, Callable[[], bytes]]] = {
    "excess native frames": lambda: hostile_dicom.excess_frames(16384, side=2),
    "excess deflated frames": lambda: hostile_dicom.excess_frames(16384, side=32, deflated=True),
    "huge compressed frames": lambda: hostile_dicom.huge_compressed_frames(40, 4096),
}
HTTP_CODES: Final = {"too_many_frames", "decode_budget_exceeded"}
WS_CODES: Final = HTTP_CODES | {"multi_frame_message"}


def _post(service: ServiceUnderTest, path: str, data: bytes) -> tuple[str | None, str]:
    answer = requests.post(
        f"{service.live.http}{path}",
        data=data,
        headers={**AUTH, "Content-Type": "application/dicom"},
        timeout=TIMEOUT_S,
    )
    problem = error_body_problem(answer.status_code, answer.headers.get("content-type"), answer.content)
    if answer.status_code not in (413, 422) or problem is not None:
        return None, f"{answer.status_code} {problem or answer.text[:160]}"
    code = answer.json()["code"]
    return code, answer.json()["detail"]


def _stream(service: ServiceUnderTest, data: bytes) -> tuple[str | None, str]:
    with connect(service.live.ws, open_timeout=TIMEOUT_S, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT_S))["type"] == "ready"
        ws.send(data)
        message = json.loads(ws.recv(timeout=TIMEOUT_S))
        ws.send(json.dumps({"type": "end"}))
    if message.get("type") != "error":
        return None, f"answered {message.get('type')!r}"
    return message["code"], message["message"]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_dicom_is_refused_fast_and_small_on_every_route(
    service: ServiceUnderTest, figures: Figures, name: str
) -> None:
    data = HOSTILE[name]()
    mark = service.log.mark()
    problems: list[str] = []
    routes: dict[str, Callable[[], tuple[str | None, str]]] = {
        "/assess": lambda: _post(service, "/assess", data),
        "/cine/frames": lambda: _post(service, "/cine/frames?name=hostile.dcm", data),
        "/ws/scan": lambda: _stream(service, data),
    }
    for route, send in routes.items():
        before = rss_mb()
        sampler = RssSampler()
        sampler.start()
        started = time.perf_counter()
        code, detail = send()
        seconds = time.perf_counter() - started
        growth = sampler.stop() - before
        figures.count("decode_budgets.cases")
        figures.peak("decode_budgets.slowest_refusal_ms", round(seconds * 1000, 1))
        figures.peak("decode_budgets.rss_peak_growth_mb", round(max(growth, 0.0), 1))
        expected = WS_CODES if route == "/ws/scan" else HTTP_CODES
        if code not in expected:
            problems.append(f"{name} on {route}: {detail}")
        if seconds > REFUSAL_LIMIT_S:
            problems.append(f"{name} on {route}: refused after {seconds:.2f} s")
        if growth > RSS_LIMIT_MB:
            problems.append(f"{name} on {route}: resident memory grew {growth:.0f} MB")
    figures.count("decode_budgets.wrong_answers", len(problems))
    figures.note(
        "decode budgets: three hostile DICOM files of 3 to 70 KB, each sent to /assess, /cine/frames and "
        "/ws/scan; memory is this process's resident set (server and client), sampled every 20 ms"
    )
    assert not problems, "\n".join(problems)
    no_server_errors(service, mark)
