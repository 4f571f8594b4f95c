"""Scan sessions: what one stream received, scored and dropped, and the cap on open streams."""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from usqa.contracts.protocol import VERDICTS, MessageType, Verdict
from usqa.service.live.drift import ScoreHistogramCounter
from usqa.service.live.results import StreamResult
from usqa.service.registry import ScoreHistogram

# The summary's own score histogram: ten equal bins, easy to read whatever the model's reference bins.
SUMMARY_EDGES = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 11))
# Latencies kept per session for its percentiles (a 30 fps stream fills this in about 9 minutes).
LATENCY_SAMPLES = 16384

# Why a slot was refused: the metric's `reason` label (usqa_scan_sessions_refused_total).
SlotRefusal = Literal["session_limit", "client_limit"]

MSG_TOO_MANY_SESSIONS = "too many scan sessions: {limit} are open; try again later"


def percentiles_ms(samples: collections.abc.Sequence[float] | np.ndarray) -> dict[str, float | None]:
    if len(samples) == 0:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(np.asarray(samples, dtype=np.float64), [50, 90, 99])
    return {"p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3)}


@dataclass
class ScanSessionStats:
    """Counters of one stream, summarised when it closes."""

    reference: ScoreHistogram | None
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.monotonic)
    received: int = 0
    scored: int = 0
    dropped: int = 0
    failed: int = 0
    amenable: int = 0
    score_sum: float = 0.0
    versions: list[int] = field(default_factory=list)
    guidance_frames: dict[Verdict, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    latencies_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_SAMPLES)
    )

    def __post_init__(self) -> None:
        self.histogram = ScoreHistogramCounter(ScoreHistogram(edges=list(SUMMARY_EDGES), counts=[0] * 10))
        self.drift = ScoreHistogramCounter(self.reference)

    def rebase(self, reference: ScoreHistogram | None) -> None:
        """A new model version: drift is measured against its validation histogram from here on."""
        self.reference = reference
        self.drift = ScoreHistogramCounter(reference)

    def record_scored(self, result: StreamResult) -> None:
        score, version = result.scored.score, result.model_version
        self.scored += 1
        self.amenable += int(result.amenable)
        self.score_sum += score
        self.histogram.add(score)
        self.drift.add(score)
        self.guidance_frames[result.stream_verdict] += 1
        self.latencies_ms.append(result.total_s * 1000)
        if not self.versions or self.versions[-1] != version:
            self.versions.append(version)

    def summary(self) -> dict[str, Any]:
        offered = self.scored + self.dropped
        return {
            "type": MessageType.SUMMARY,
            "session": self.session_id,
            "duration_s": round(time.monotonic() - self.started, 3),
            "frames": {
                "received": self.received,
                "scored": self.scored,
                "dropped": self.dropped,
                "failed": self.failed,
            },
            "drop_rate": round(self.dropped / offered, 4) if offered else 0.0,
            "amenable_fraction": round(self.amenable / self.scored, 4) if self.scored else None,
            "mean_score": round(self.score_sum / self.scored, 4) if self.scored else None,
            "score_histogram": {"edges": list(SUMMARY_EDGES), "counts": list(self.histogram.counts)},
            "guidance_frames": dict(self.guidance_frames),
            "latency_ms": percentiles_ms(self.latencies_ms),
            "drift": {"psi": _rounded(self.drift.psi()), "frames": self.drift.total},
            "model_versions": list(self.versions),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class SessionLimiter:
    """At most `limit` streams at once, and at most `per_client` of them from one client (0: any number);
    the next is refused (`CloseCode.TRY_AGAIN`, try again later)."""

    def __init__(self, limit: int, per_client: int = 0) -> None:
        self.limit = limit
        self.per_client = per_client
        self.open = 0
        self.by_client: collections.Counter[str] = collections.Counter()

    def try_acquire(self, client: str | None = None) -> bool:
        return self.acquire(client) is None

    def acquire(self, client: str | None) -> SlotRefusal | None:
        """Take a slot for `client` (None: not counted per client) and return None, or say why not."""
        if self.open >= self.limit:
            return "session_limit"
        if client is not None and self.per_client and self.by_client[client] >= self.per_client:
            return "client_limit"
        self.open += 1
        if client is not None:
            self.by_client[client] += 1
        return None

    def release(self, client: str | None = None) -> None:
        self.open = max(0, self.open - 1)
        if client is not None and self.by_client[client] > 1:
            self.by_client[client] -= 1
        else:
            self.by_client.pop(client or "", None)  # no empty entry per address ever seen
