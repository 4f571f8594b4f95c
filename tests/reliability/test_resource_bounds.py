"""Resource bounds: a frame flood costs dropped frames, not memory; oversized bodies are refused with 413
before they are read; streams over the session limit are closed with 1013 and every slot comes back.

All traffic goes to a real uvicorn server on 127.0.0.1 in this process. Every loop is bounded by a count
and a deadline. Memory is this process's resident set (psutil), so it counts the client beside the server.

The flood, the raw-socket bodies and the session crowds are tests/support/resource_probes.py.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.resource_probes import (
    BODY_LIMIT,
    BURST_FRAMES,
    CHUNK,
    DECLARED_REFUSAL_LIMIT_S,
    FLOOD_FPS,
    FLOOD_SECONDS,
    FLOOD_SHAPE,
    FLOOD_VARIANTS,
    HTTP_TIMEOUT_S,
    RSS_GROWTH_LIMIT_MB,
    RSS_SAMPLE_S,
    SESSION_LIMIT,
    TARGETS,
    WARMUP_SECONDS,
    RawAnswer,
    RssSampler,
    SessionTally,
    crowd_at_once,
    declared_too_large,
    drop_abruptly,
    end_session,
    first_answer,
    flood,
    metric,
    no_server_errors,
    open_session,
    rss_mb,
    scraped,
    streamed_too_large,
    wait_for_free_slots,
)

from ..service.conftest import frame_of_level, jpeg_bytes
from .conftest import (
    FULL,
    WS_MESSAGE_LIMIT,
    Figures,
    ServiceUnderTest,
    cases,
    error_body_problem,
    service_under_test,
)

SECTION = "resource_bounds"


@pytest.fixture(scope="module")
def bounded(
    reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceUnderTest]:
    """A server with a small session limit and body limit (one per module: the limits are its settings)."""
    with service_under_test(
        reliability_registry,
        tmp_path_factory.mktemp("bounded"),
        max_scan_sessions=SESSION_LIMIT,
        max_body_bytes=BODY_LIMIT,
    ) as running:
        yield running


def test_a_300_fps_flood_costs_dropped_frames_not_memory(bounded: ServiceUnderTest, figures: Figures) -> None:
    """A paced flood at 300 fps, then a burst as fast as the socket goes: every frame is accounted for
    (scored, or dropped for a newer one), /metrics counts the drops, and resident memory stays flat."""
    frames = [
        jpeg_bytes(frame_of_level(60 + 20 * i, FLOOD_SHAPE, seed=i, spread=10)) for i in range(FLOOD_VARIANTS)
    ]
    assert max(len(f) for f in frames) < WS_MESSAGE_LIMIT
    flood(bounded, frames, round(FLOOD_FPS * WARMUP_SECONDS), FLOOD_FPS)  # allocator pools, caches
    gc.collect()
    mark = bounded.log.mark()
    before_metrics = scraped(bounded)
    rss_before = rss_mb()
    sampler = RssSampler()
    sampler.start()
    try:
        paced = flood(bounded, frames, round(FLOOD_FPS * FLOOD_SECONDS), FLOOD_FPS)
        burst = flood(bounded, frames, BURST_FRAMES, None)
    finally:
        peak = sampler.stop()
    gc.collect()
    rss_after = rss_mb()
    after_metrics = scraped(bounded)

    def delta(name: str) -> float:
        return metric(after_metrics, name) - metric(before_metrics, name)

    dropped = paced.count("dropped") + burst.count("dropped")
    received = paced.count("received") + burst.count("received")
    growth = max(0.0, rss_after - rss_before)
    peak_growth = max(0.0, peak - rss_before)
    figures.count("flood.frames_sent", paced.sent)
    figures.count("flood.frames_scored", paced.count("scored"))
    figures.count("flood.frames_dropped", paced.count("dropped"))
    figures.count("flood.frames_failed", paced.count("failed"))
    figures.peak("flood.offered_fps", round(paced.sent / paced.seconds, 1))
    figures.peak("flood.scored_fps", round(paced.count("scored") / paced.seconds, 1))
    figures.peak("flood.seconds", round(paced.seconds, 2))
    figures.peak("flood.drop_rate", paced.summary["drop_rate"] if paced.summary else 1.0)
    figures.count("burst.frames_sent", burst.sent)
    figures.count("burst.frames_dropped", burst.count("dropped"))
    figures.peak("burst.drop_rate", burst.summary["drop_rate"] if burst.summary else 1.0)
    figures.count("flood.unaccounted_frames", paced.unaccounted + burst.unaccounted)
    figures.count("flood.dropped_metric_mismatch", abs(delta("usqa_scan_frames_dropped_total") - dropped))
    figures.peak("flood.rss_growth_mb", round(growth, 1))
    figures.peak("flood.rss_peak_growth_mb", round(peak_growth, 1))
    figures.note(
        "flood memory is the resident set of the test process, which holds the server (in a thread) and the "
        "client together: measured after a warm-up flood, again after the flood and the burst, and sampled "
        f"every {RSS_SAMPLE_S * 1000:.0f} ms in between"
    )
    figures.note(
        f"the paced flood sends {FLOOD_SHAPE[1]}x{FLOOD_SHAPE[0]} JPEG frames; whether it drops frames depends "
        "on how fast this machine decodes and scores them, so drops are required only of the burst"
    )

    problems = paced.problems(f"the {FLOOD_FPS} fps flood") + burst.problems("the burst")
    assert not problems, "\n".join(problems)
    assert paced.sent / paced.seconds > FLOOD_FPS * 0.8, f"only {paced.sent / paced.seconds:.0f} fps sent"
    assert burst.count("dropped") > 0, f"a burst of {BURST_FRAMES} frames dropped none: {burst.summary}"
    assert delta("usqa_scan_frames_dropped_total") == dropped, "/metrics and the summaries disagree on drops"
    assert delta("usqa_scan_frames_received_total") == received, "/metrics and the summaries disagree"
    assert growth < RSS_GROWTH_LIMIT_MB, f"resident memory grew {growth:.1f} MB over the flood"
    assert peak_growth < RSS_GROWTH_LIMIT_MB, f"resident memory peaked {peak_growth:.1f} MB above the start"
    no_server_errors(bounded, mark)


def test_oversized_bodies_are_refused_with_413(bounded: ServiceUnderTest, figures: Figures) -> None:
    declared_sizes = [BODY_LIMIT + 1, 10 * 1024**3, 2**63 - 1][: cases(2, 3)]
    extras = [1, CHUNK][: cases(1, 2)]
    problems: list[str] = []
    slowest_declared = 0.0
    checked = 0
    mark = bounded.log.mark()
    for _ in range(cases(1, 5)):
        for target in TARGETS:
            answers: list[tuple[str, RawAnswer]] = []
            for declared in declared_sizes:
                size = max(declared, target.limit + 1)
                answer = declared_too_large(bounded, target, size)
                slowest_declared = max(slowest_declared, answer.seconds)
                if answer.seconds > DECLARED_REFUSAL_LIMIT_S:
                    problems.append(
                        f"{target.path} declaring {size} bytes: answered after {answer.seconds:.1f} s"
                    )
                answers.append((f"{target.path} declaring {size} bytes", answer))
            for extra in extras:
                answer = streamed_too_large(bounded, target, extra)
                answers.append((f"{target.path} streaming {target.limit + extra} bytes", answer))
            for label, answer in answers:
                checked += 1
                payload = json.loads(answer.body) if answer.status == 413 else {}
                if answer.status != 413 or payload.get("code") != target.code:
                    problems.append(f"{label}: {answer.status} {answer.body[:200]!r}")
                elif payload["detail"] != target.message:
                    problems.append(f"{label}: message {payload['detail']!r}")
                problem = error_body_problem(answer.status, answer.headers.get("content-type"), answer.body)
                if problem is not None:
                    problems.append(f"{label}: {problem}")
    # The server still answers normally after the refusals.
    health = requests.get(f"{bounded.live.http}/readyz", timeout=HTTP_TIMEOUT_S)
    if health.status_code != 200:
        problems.append(f"/readyz answered {health.status_code} after the refusals")
    figures.count("bodies.cases", checked)
    figures.count("bodies.wrong_answers", len(problems))
    figures.peak("bodies.slowest_declared_refusal_ms", round(slowest_declared * 1000, 1))
    assert not problems, f"{len(problems)} problems in {checked} oversized bodies:\n" + "\n".join(
        problems[:8]
    )
    no_server_errors(bounded, mark)


def test_streams_over_the_session_limit_close_with_1013(bounded: ServiceUnderTest, figures: Figures) -> None:
    tally = SessionTally()
    slowest_release = 0.0
    mark = bounded.log.mark()
    before = scraped(bounded)
    wait_for_free_slots(bounded, SESSION_LIMIT)
    for round_ in range(cases(2, 10)):
        with contextlib.ExitStack() as streams:
            sessions = [open_session(bounded, streams) for _ in range(SESSION_LIMIT)]
            for i, ws in enumerate(sessions):
                tally.expect(first_answer(ws), True, f"round {round_}, stream {i} within the limit")
            for extra in range(cases(2, 5)):
                with contextlib.ExitStack() as refused:
                    answer = first_answer(open_session(bounded, refused))
                tally.expect(answer, False, f"round {round_}, stream {extra} over the limit")
            # Half the streams end politely, the rest vanish: every slot must come back either way.
            for ws in sessions[::2]:
                end_session(ws)
            for ws in sessions[1::2]:
                drop_abruptly(ws)
            slowest_release = max(slowest_release, wait_for_free_slots(bounded, SESSION_LIMIT))
        with contextlib.ExitStack() as streams:
            ws = open_session(bounded, streams)
            tally.expect(first_answer(ws), True, f"round {round_}, a stream after the others closed")
            end_session(ws)
    wait_for_free_slots(bounded, SESSION_LIMIT)
    if FULL:
        crowd_at_once(bounded, tally, SESSION_LIMIT * 3)

    after = scraped(bounded)
    refused_metric = metric(after, "usqa_scan_sessions_refused_total", reason="session_limit") - metric(
        before, "usqa_scan_sessions_refused_total", reason="session_limit"
    )
    open_gauge = metric(after, "usqa_scan_sessions_open")
    figures.peak("sessions.limit", SESSION_LIMIT)
    figures.count("sessions.attempts", tally.attempts)
    figures.count("sessions.accepted", tally.accepted)
    figures.count("sessions.refused_1013", tally.refused)
    figures.count("sessions.wrong_answers", len(tally.problems))
    figures.count("sessions.refused_metric_mismatch", abs(refused_metric - tally.refused))
    figures.peak("sessions.open_after", open_gauge)
    figures.peak("sessions.slowest_abrupt_release_ms", round(slowest_release * 1000, 1))
    assert not tally.problems, f"{len(tally.problems)} problems in {tally.attempts} streams:\n" + "\n".join(
        tally.problems[:8]
    )
    assert tally.refused > 0
    assert refused_metric == tally.refused, (
        f"/metrics counted {refused_metric} refusals, the clients saw {tally.refused}"
    )
    assert open_gauge == 0, f"usqa_scan_sessions_open is {open_gauge} with every stream closed"
    no_server_errors(bounded, mark)
