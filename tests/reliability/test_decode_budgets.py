"""Decode budgets (issue 28): small hostile DICOM files that decode to far more than they look are refused
on /assess, /cine/frames and /ws/scan in under a second, with resident memory growing under 100 MB.

The files (tests/support/hostile_dicom.py): native pixel data holding 16,384 frames while NumberOfFrames
says 1; the same deflated (32x32 frames, 16 MiB inflated from 17 KB); 40 JPEG 2000 frames declared
4096x4096 in 3 KB; 8 frames declared 64x64 whose JPEG 2000 codestreams are 4096x4096. The server runs with the production limits (5,000 frames, 128 Mi decoded pixels).
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
from tests.support.memory_probes import TreeRssSampler, tree_rss_mb
from tests.support.resource_probes import no_server_errors

from .conftest import AUTH, Figures, ServiceUnderTest, error_body_problem

SECTION = "resource_bounds"
REFUSAL_LIMIT_S: Final = 1.0
RSS_LIMIT_MB: Final = 100.0
TIMEOUT_S: Final = 30.0
HOSTILE: Final[dict[str, Callable[[], bytes]]] = {
    "excess native frames": lambda: hostile_dicom.excess_frames(16384, side=2),
    "excess deflated frames": lambda: hostile_dicom.excess_frames(16384, side=32, deflated=True),
    "huge compressed frames": lambda: hostile_dicom.huge_compressed_frames(40, 4096),
    "codestreams larger than the header": lambda: hostile_dicom.undersized_header_j2k(64, 4096, 8),
}
# The last is refused as corrupt (400): its header is honest about nothing, not over a limit.
HTTP_CODES: Final = {"too_many_frames", "decode_budget_exceeded", "corrupt_frame"}
MB: Final = 1_000_000


def warm_lane(service: ServiceUnderTest) -> None:
    """One honest DICOM first: the decode lane's process starts with its first decode, not in a measurement."""
    for path in ("/assess", "/cine/frames?name=warm.dcm"):
        answer = requests.post(
            f"{service.live.http}{path}",
            data=hostile_dicom.excess_frames(2, side=64, declared=2),
            headers={**AUTH, "Content-Type": "application/dicom"},
            timeout=TIMEOUT_S,
        )
        assert answer.status_code == 200, answer.text[:200]


WS_CODES: Final = HTTP_CODES | {"multi_frame_message"}


def _post(service: ServiceUnderTest, path: str, data: bytes) -> tuple[str | None, str]:
    answer = requests.post(
        f"{service.live.http}{path}",
        data=data,
        headers={**AUTH, "Content-Type": "application/dicom"},
        timeout=TIMEOUT_S,
    )
    problem = error_body_problem(answer.status_code, answer.headers.get("content-type"), answer.content)
    if answer.status_code not in (400, 413, 422) or problem is not None:
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
    warm_lane(service)
    mark = service.log.mark()
    problems: list[str] = []
    routes: dict[str, Callable[[], tuple[str | None, str]]] = {
        "/assess": lambda: _post(service, "/assess", data),
        "/cine/frames": lambda: _post(service, "/cine/frames?name=hostile.dcm", data),
        "/ws/scan": lambda: _stream(service, data),
    }
    for route, send in routes.items():
        before = tree_rss_mb()
        sampler = TreeRssSampler()
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
        "decode budgets: four hostile DICOM files of 2 to 70 KB, each sent to /assess, /cine/frames and "
        "/ws/scan; memory is the resident set of this process (server and client) and its children (the decode "
        "lane), sampled every 20 ms"
    )
    assert not problems, "\n".join(problems)
    no_server_errors(service, mark)


def test_memory_comes_back_after_a_file_that_takes_the_whole_budget(
    service: ServiceUnderTest, figures: Figures
) -> None:
    data = hostile_dicom.zero_j2k_frames(8, 4096)  # 8 x 4096 x 4096: exactly the decoded-pixel budget
    mark = service.log.mark()
    answer = requests.post(
        f"{service.live.http}/assess",
        data=data,
        headers={**AUTH, "Content-Type": "application/dicom"},
        timeout=TIMEOUT_S,
    )  # warm-up: the codec's own buffers, the thread's arena
    before = tree_rss_mb()
    sampler = TreeRssSampler()
    sampler.start()
    for _ in range(3):
        answer = requests.post(
            f"{service.live.http}/assess",
            data=data,
            headers={**AUTH, "Content-Type": "application/dicom"},
            timeout=TIMEOUT_S,
        )
        assert answer.status_code == 200, answer.text[:200]
    peak = sampler.stop()
    retained = tree_rss_mb() - before
    figures.peak("decode_budgets.full_budget_peak_mb", round(peak - before, 1))
    figures.peak("decode_budgets.full_budget_retained_mb", round(max(retained, 0.0), 1))
    assert retained < 50, f"{retained:.0f} MB stayed resident after three full-budget decodes"
    no_server_errors(service, mark)
