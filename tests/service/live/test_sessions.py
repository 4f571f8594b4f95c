from __future__ import annotations

from usqa.service.live.sessions import SUMMARY_EDGES, ScanSessionStats, SessionLimiter, percentiles_ms
from usqa.service.registry import ScoreHistogram

from .conftest import stream_result

REFERENCE = ScoreHistogram(edges=[0.0, 0.5, 1.0], counts=[50, 50])


def test_summary_counts_frames_scores_and_versions() -> None:
    stats = ScanSessionStats(reference=REFERENCE)
    stats.received = 12
    stats.dropped = 2
    stats.failed = 1
    for i in range(9):
        verdict = "good" if i >= 3 else "adjust"  # amenable exactly when good
        stats.record_scored(
            stream_result(
                i, 0.5, verdict, score=0.05 + i * 0.1, total_s=(i + 1) / 1000, version=1 if i < 5 else 2
            )
        )
    summary = stats.summary()
    assert summary["frames"] == {"received": 12, "scored": 9, "dropped": 2, "failed": 1}
    assert summary["drop_rate"] == round(2 / 11, 4)
    assert summary["amenable_fraction"] == round(6 / 9, 4)
    assert summary["score_histogram"]["edges"] == list(SUMMARY_EDGES)
    assert summary["score_histogram"]["counts"] == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    assert summary["guidance_frames"] == {"good": 6, "adjust": 3, "no_signal": 0, "out_of_scope": 0}
    assert summary["model_versions"] == [1, 2]
    assert summary["latency_ms"]["p50"] == 5.0
    assert summary["drift"] == {"psi": None, "frames": 9}  # too few frames to judge


def test_rebase_measures_drift_against_the_new_reference() -> None:
    stats = ScanSessionStats(reference=REFERENCE)
    for _ in range(40):
        stats.record_scored(stream_result(0, 0.9, "good", score=0.9))
    assert stats.summary()["drift"]["psi"] > 0.25
    stats.rebase(ScoreHistogram(edges=[0.0, 0.5, 1.0], counts=[1, 99]))
    assert stats.summary()["drift"] == {"psi": None, "frames": 0}


def test_empty_session_summary() -> None:
    summary = ScanSessionStats(reference=None).summary()
    assert summary["amenable_fraction"] is None and summary["drop_rate"] == 0.0
    assert summary["latency_ms"] == {"p50": None, "p90": None, "p99": None}
    assert percentiles_ms([1.0, 2.0, 3.0])["p50"] == 2.0


def test_limiter_refuses_past_its_limit() -> None:
    limiter = SessionLimiter(2)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    limiter.release()
    assert limiter.try_acquire()
    assert limiter.open == 2
