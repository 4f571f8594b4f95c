"""Memory comes back after large requests (issue 28, item 12: "a decoded file stays in an upload cache after its
request", "memory does not come back down after the bombs"): the resident set of the server (this process and
its decode lane's) is measured before and after rounds of large honest requests on the routes that decode a
whole file, and nothing of a request stays behind.

The requests: a 48 MB DICOM of 48 native 1024x1024 frames on /assess and on /cine/frames (whose answer is
the whole decoded file, as PNG frames), and 8 JPEG 2000 frames of 4096x4096 (exactly the decoded-pixel budget)
on /cine/frames (/assess with that file is test_decode_budgets.py's). One request of each kind comes first,
unmeasured: the lane's process starts with its first decode, and the codecs and arenas take their own.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Final

import requests

from tests.support import hostile_dicom
from tests.support.memory_probes import TreeRssSampler, own_and_children_rss_mb
from tests.support.resource_probes import no_server_errors

from .conftest import AUTH, Figures, ServiceUnderTest, cases

SECTION = "resource_bounds"
ROUNDS: Final = cases(2, 4)
RETAINED_LIMIT_MB: Final = 50.0
SETTLE_S: Final = 0.5  # the lane's reply and the response objects are dropped just after the answer
TIMEOUT_S: Final = 60.0
NATIVE_FRAMES, NATIVE_SIDE = 48, 1024
REQUESTS: Final[dict[str, tuple[str, Callable[[], bytes]]]] = {
    "48 MB native DICOM on /assess": (
        "/assess",
        lambda: hostile_dicom.excess_frames(NATIVE_FRAMES, side=NATIVE_SIDE, declared=NATIVE_FRAMES),
    ),
    "48 MB native DICOM on /cine/frames": (
        "/cine/frames?name=cine.dcm",
        lambda: hostile_dicom.excess_frames(NATIVE_FRAMES, side=NATIVE_SIDE, declared=NATIVE_FRAMES),
    ),
    "8 x 4096x4096 JPEG 2000 on /cine/frames": (
        "/cine/frames?name=budget.dcm",
        lambda: hostile_dicom.zero_j2k_frames(8, 4096),
    ),
}


def _post(service: ServiceUnderTest, path: str, data: bytes) -> None:
    answer = requests.post(
        f"{service.live.http}{path}",
        data=data,
        headers={**AUTH, "Content-Type": "application/dicom"},
        timeout=TIMEOUT_S,
    )
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:200]}"


def test_memory_comes_back_after_large_requests(service: ServiceUnderTest, figures: Figures) -> None:
    bodies = {label: (path, build()) for label, (path, build) in REQUESTS.items()}
    mark = service.log.mark()
    for path, data in bodies.values():
        _post(service, path, data)
    problems = []
    for label, (path, data) in bodies.items():
        gc.collect()
        own_before, children_before = own_and_children_rss_mb()
        before = own_before + children_before
        sampler = TreeRssSampler()
        sampler.start()
        for _ in range(ROUNDS):
            _post(service, path, data)
        peak = sampler.stop()
        time.sleep(SETTLE_S)
        gc.collect()
        own_after, children_after = own_and_children_rss_mb()
        retained = own_after + children_after - before
        figures.count("memory.large_requests", ROUNDS)
        figures.peak("memory.large_request_peak_mb", round(peak - before, 1))
        figures.peak("memory.large_request_retained_mb", round(max(retained, 0.0), 1))
        if retained > RETAINED_LIMIT_MB:
            problems.append(
                f"{label}: {retained:.0f} MB stayed resident after {ROUNDS} requests (this process, server and "
                f"client: {own_after - own_before:+.0f} MB; its children, the decode lane: "
                f"{children_after - children_before:+.0f} MB)"
            )
    figures.note(
        f"memory after large requests: {ROUNDS} rounds each of a {NATIVE_FRAMES} MB DICOM of {NATIVE_FRAMES} "
        f"native {NATIVE_SIDE}x{NATIVE_SIDE} frames on /assess and /cine/frames and of 8 JPEG 2000 frames of "
        "4096x4096 on /cine/frames, after one unmeasured request of each; the resident set of this process "
        "(server and client) and its children (the decode lane), before and after each kind's rounds"
    )
    assert not problems, "\n".join(problems)
    no_server_errors(service, mark)
