"""Prometheus metrics in base units, named after Triton's (`nv_inference_*` -> `usqa_inference_*`).

Each app owns its `CollectorRegistry`, so several apps in one process (tests, the benchmark) never share
or collide over counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from usqa.service.inference.capacity import CapacityEstimate

# Seconds: fine steps across the 17-33 ms frame budget, coarse beyond it.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.010, 0.015, 0.020, 0.025, 0.033, 0.050, 0.075, 0.100,
    0.250, 0.500, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))
PSI_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# `reason` values of request failures (Triton's REJECTED / OTHER, plus the service's own refusals).
REASON_REJECTED = "rejected"  # the input was refused (4xx)
REASON_QUEUE_FULL = "queue_full"  # 429
REASON_ERROR = "error"  # a server fault (500)

ENDPOINT_ASSESS = "assess"
ENDPOINT_SCAN = "scan"


# (model, version, psi) of the served version, or None when there is nothing to report.
DriftSource = Callable[[], tuple[str, str, float] | None]


@dataclass
class ScoringMetrics:
    """The labelled children for one model version and endpoint, looked up once instead of per frame."""

    success: Counter
    duration: Histogram
    queue: Histogram
    decode: Histogram
    score: Histogram
    amenable: Counter
    _failure: Counter
    _verdict: Counter
    _labels: tuple[str, str, str]
    _failures: dict[str, Counter] = field(default_factory=dict)
    _verdicts: dict[tuple[str, str], Counter] = field(default_factory=dict)

    def failure(self, reason: str) -> Counter:
        if reason not in self._failures:
            self._failures[reason] = self._failure.labels(*self._labels, reason)
        return self._failures[reason]

    def verdict(self, verdict: str, reason: str) -> Counter:
        """The frames-by-verdict counter of this model version (every endpoint counts in it)."""
        key = (verdict, reason)
        if key not in self._verdicts:
            self._verdicts[key] = self._verdict.labels(*self._labels[:2], verdict, reason)
        return self._verdicts[key]


SCORE_DRIFT = (
    "usqa_score_drift_psi",
    "Population stability index of recent scores against the validation histogram",
)
OOD_DRIFT = (
    "usqa_ood_drift_psi",
    "Population stability index of recent out-of-distribution distances against validation quantiles",
)


class DriftCollector(Collector):
    """A drift gauge (`usqa_score_drift_psi`, `usqa_ood_drift_psi`), computed when scraped, not per frame."""

    def __init__(self, source: DriftSource, metric: tuple[str, str] = SCORE_DRIFT) -> None:
        self.source = source
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(*self.metric, labels=["model", "version"])
        current = self.source()
        if current is not None:
            family.add_metric([current[0], current[1]], current[2])
        yield family


class CapacityCollector(Collector):
    """What the service can carry (`usqa_capacity_*`, `usqa_frame_cost_seconds`), read from the meter when scraped;
    absent while nothing is measured."""

    def __init__(self, source: Callable[[], CapacityEstimate]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        estimate = self.source()
        fps = GaugeMetricFamily(
            "usqa_capacity_frames_per_second", "Estimated frames/s at saturation (the lowest bound)"
        )
        streams = GaugeMetricFamily(
            "usqa_capacity_streams", "Streams admitted at USQA_STREAM_FPS, keeping USQA_CAPACITY_HEADROOM"
        )
        cost = GaugeMetricFamily(
            "usqa_frame_cost_seconds", "Per-frame cost behind each capacity bound", labels=["bound"]
        )
        warm = GaugeMetricFamily(
            "usqa_capacity_warm_ratio",
            "Per-frame CPU of warm work over all batches'; the bounds take off the wake-ups it shows",
        )
        if estimate.frames_per_second is not None and estimate.streams is not None:
            fps.add_metric([], estimate.frames_per_second)
            streams.add_metric([], estimate.streams)
        for bound, milliseconds in estimate.cost_ms.items():
            cost.add_metric([bound], milliseconds / 1000)
        if estimate.warm_ratio is not None:
            warm.add_metric([], estimate.warm_ratio)
        yield from (fps, streams, cost, warm)


class ServiceMetrics:
    """Every metric the service exports, registered in its own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        model = ["model", "version"]
        by_endpoint = [*model, "endpoint"]
        self.request_success = Counter(
            "usqa_inference_request_success",
            "Requests (uploads, stream frames) answered",
            by_endpoint,
            registry=r,
        )
        self.request_failure = Counter(
            "usqa_inference_request_failure",
            "Requests that failed, by reason",
            [*by_endpoint, "reason"],
            registry=r,
        )
        self.inference_count = Counter("usqa_inference_count", "Frames scored", model, registry=r)
        self.exec_count = Counter(
            "usqa_inference_exec_count", "Graph executions (one per batch of frames)", model, registry=r
        )
        self.request_duration = Histogram(
            "usqa_inference_request_duration_seconds",
            "From request (or frame) received to answer ready",
            by_endpoint,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "usqa_inference_queue_duration_seconds",
            "Waiting in the inference queue",
            by_endpoint,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decode_duration = Histogram(
            "usqa_decode_duration_seconds",
            "Decoding and preparing frames",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_duration = Histogram(
            "usqa_inference_compute_infer_duration_seconds",
            "Running the graphs, per batch",
            model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "usqa_inference_pending_request_count",
            "Requests waiting or running in the inference queue",
            registry=r,
        )
        self.sessions_open = Gauge("usqa_scan_sessions_open", "Open /ws/scan streams", registry=r)
        self.sessions_refused = Counter(
            "usqa_scan_sessions_refused", "Streams refused, by reason", ["reason"], registry=r
        )
        self.sessions_timed_out = Counter(
            "usqa_scan_sessions_timed_out",
            "Streams closed for silence: no first message in time, or no frame for the idle timeout",
            registry=r,
        )
        self.frames_received = Counter("usqa_scan_frames_received", "Stream frames received", registry=r)
        self.frames_dropped = Counter(
            "usqa_scan_frames_dropped", "Stream frames replaced by a newer one before scoring", registry=r
        )
        self.score = Histogram(
            "usqa_amenability_score",
            "Controller amenability scores",
            model,
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.amenable = Counter("usqa_amenable_frames", "Frames judged amenable", model, registry=r)
        self.model_info = Gauge(
            "usqa_model_info",
            "1 for the model version being served",
            [*model, "task", "provider"],
            registry=r,
        )
        self.provider_info = Gauge(
            "usqa_execution_provider_info",
            "1 for the execution provider in use; `preferred` is the one configuration asked for first",
            ["provider", "preferred"],
            registry=r,
        )
        self.model_ready = Gauge("usqa_model_ready", "1 when a model is loaded and warm", registry=r)
        self.model_swaps = Counter(
            "usqa_model_swap", "Model swap attempts, by result", ["result"], registry=r
        )
        self.model_swap_failed = Gauge(
            "usqa_model_swap_failed",
            "1 while the newest version the registry names was refused and an older one serves",
            registry=r,
        )
        self.verdicts = Counter(
            "usqa_frame_verdict",
            "Frames by verdict and reason (good, adjust, no_signal, out_of_scope)",
            [*model, "verdict", "reason"],
            registry=r,
        )
        self.model_calibrated = Gauge(
            "usqa_model_calibrated",
            "1 when the served manifest carries a display-score calibration and an out-of-scope check, "
            "0 when it falls back to raw scores (schema_version 1)",
            registry=r,
        )
        self.session_drift_psi = Histogram(
            "usqa_scan_session_drift_psi",
            "Population stability index of each closed stream's scores",
            buckets=PSI_BUCKETS,
            registry=r,
        )
        self.pacs_waiting = Gauge(
            "usqa_pacs_outbox_scans",
            "Finished scans whose objects wait in the outbox for the PACS",
            registry=r,
        )
        self.pacs_degraded = Gauge("usqa_pacs_degraded", "1 while deliveries to the PACS fail", registry=r)
        self.pacs_delivered = Counter(
            "usqa_pacs_instances_delivered", "DICOM instances the PACS has stored", registry=r
        )
        self.pacs_failures = Counter(
            "usqa_pacs_delivery_failures",
            "Deliveries that failed: retry (the PACS unreachable or busy) or refused (kept aside)",
            ["kind"],
            registry=r,
        )
        self.pacs_filing_failures = Counter(
            "usqa_pacs_filing_failures", "Finished scans whose DICOM objects could not be written", registry=r
        )

        self._scoring: dict[tuple[str, int, str], ScoringMetrics] = {}

    def track_pending(self, pending: Callable[[], float]) -> None:
        self.pending.set_function(pending)

    def track_capacity(self, source: Callable[[], CapacityEstimate]) -> None:
        self.registry.register(CapacityCollector(source))

    def track_pacs(self, waiting: Callable[[], float], degraded: Callable[[], float]) -> None:
        self.pacs_waiting.set_function(waiting)
        self.pacs_degraded.set_function(degraded)

    def track_drift(self, source: DriftSource, ood_source: DriftSource | None = None) -> None:
        self.registry.register(DriftCollector(source))
        if ood_source is not None:
            self.registry.register(DriftCollector(ood_source, OOD_DRIFT))

    def scoring(self, model: str, version: int, endpoint: str) -> ScoringMetrics:
        key = (model, version, endpoint)
        if key not in self._scoring:
            labels = (model, str(version), endpoint)
            self._scoring[key] = ScoringMetrics(
                success=self.request_success.labels(*labels),
                duration=self.request_duration.labels(*labels),
                queue=self.queue_duration.labels(*labels),
                decode=self.decode_duration.labels(endpoint),
                score=self.score.labels(model, str(version)),
                amenable=self.amenable.labels(model, str(version)),
                _failure=self.request_failure,
                _verdict=self.verdicts,
                _labels=labels,
            )
        return self._scoring[key]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
