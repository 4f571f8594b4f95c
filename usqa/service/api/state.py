"""Everything the routes share at run time, built by the lifespan and kept in `app.state.service`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

from usqa.service.api.metrics import ScoringMetrics, ServiceMetrics
from usqa.service.api.schemas import (
    CapacityOut,
    ModelStatus,
    PacsStatus,
    PassLineOut,
    ProviderStatus,
    ReadinessResponse,
    SwapReport,
)
from usqa.service.inference.batcher import InferenceQueue
from usqa.service.inference.calibration import MSG_UNCALIBRATED
from usqa.service.inference.capacity import CapacityMeter
from usqa.service.inference.holder import ModelHolder, SwapOutcome
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.providers import ProviderPlan, ThreadPlan
from usqa.service.inference.scoring import FrameScorer, ScoredBatch
from usqa.service.inference.served_models import ServedModels
from usqa.service.inference.watcher import RegistryWatcher
from usqa.service.jobs import JobClient
from usqa.service.live.drift import SERVICE_MIN_FRAMES, DriftMonitor, ood_reference, score_reference
from usqa.service.live.session_store import SessionStore
from usqa.service.live.sessions import SessionLimiter
from usqa.service.record.outbox import Outbox, OutboxSender
from usqa.service.registry.pass_line import pass_line
from usqa.service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    providers: ProviderPlan
    threads: ThreadPlan
    holder: ModelHolder  # the default model's (USQA_MODEL_NAME)
    queue: InferenceQueue
    scorer: FrameScorer
    sessions: SessionLimiter
    # Reports of open and recent scan sessions (GET /sessions).
    records: SessionStore
    # Every served model's holder, the default first (issue #27).
    models: ServedModels
    # What the service can carry, measured while frames flow (issue #27 item 3).
    capacity: CapacityMeter
    watcher: RegistryWatcher | None = None
    # Retraining jobs: None where no broker is configured (the job routes then answer 503).
    jobs: JobClient | None = None
    drift: DriftMonitor | None = None
    ood_drift: DriftMonitor | None = None
    # The PACS outbox and its sender: None where USQA_PACS_URL is unset.
    outbox: Outbox | None = None
    delivery: OutboxSender | None = None
    # Scans being written to the outbox (held so the tasks are not collected mid-way; awaited at shutdown).
    filing: set[asyncio.Task[None]] = field(default_factory=set)
    ready: bool = False
    _drift_version: int | None = field(default=None, repr=False)
    _model_info: dict[str, tuple[str, str, str, str]] = field(default_factory=dict, repr=False)

    def on_model_event(self, outcome: SwapOutcome, model: LoadedModel | None) -> None:
        """Keep metrics and the drift reference in step with the served version."""
        if outcome.status == "swapped" and model is not None:
            self.metrics.model_swaps.labels(result="swapped").inc()
            info = (model.name, str(model.number), model.task, model.provider)
            if (previous := self._model_info.get(model.name)) is not None:
                with contextlib.suppress(KeyError):
                    self.metrics.model_info.remove(*previous)
            self._model_info[model.name] = info
            self.metrics.model_info.labels(*info).set(1)
            self.metrics.provider_info.clear()
            self.metrics.provider_info.labels(model.provider, self.providers.preferred).set(1)
            self.metrics.model_swap_failed.set(0)
            self.metrics.model_ready.set(1)
            if model.name != self.holder.name:
                return  # drift and calibration gauges follow the default exam
            window = self.settings.drift_window
            self.drift = DriftMonitor(score_reference(model.manifest), window, SERVICE_MIN_FRAMES)
            self.ood_drift = DriftMonitor(ood_reference(model.manifest), window, SERVICE_MIN_FRAMES)
            self._drift_version = model.number
            self.metrics.model_calibrated.set(0 if model.scale.fallback else 1)
        elif outcome.status == "failed":
            self.metrics.model_swaps.labels(result="failed").inc()
            self.metrics.model_swap_failed.set(1)

    def record_scored(self, scoring: ScoringMetrics, batch: ScoredBatch, total_s: float) -> None:
        """The metrics epilogue of a scored upload or stream frame: latencies, success, scores, drift window."""
        timing = batch.timing
        scoring.success.inc()
        scoring.duration.observe(total_s)
        scoring.queue.observe(timing.queue_s)
        scoring.decode.observe(timing.prepare_s)
        # The drift window holds the served version's scores only: a frame scored by the version a swap
        # just replaced would mix two score distributions.
        same_version = self.drift is not None and self._drift_version == batch.model.number
        for frame in batch.frames:
            scoring.score.observe(frame.score)
            if frame.amenable:
                scoring.amenable.inc()
            scoring.verdict(frame.verdict.verdict, frame.verdict.reason).inc()
            if same_version and self.drift is not None:
                self.drift.add(frame.score)
            if same_version and self.ood_drift is not None and frame.ood_distance is not None:
                self.ood_drift.add(frame.ood_distance)

    def drift_now(self) -> tuple[str, str, float] | None:
        return self._psi(self.drift)

    def ood_drift_now(self) -> tuple[str, str, float] | None:
        return self._psi(self.ood_drift)

    def _psi(self, drift: DriftMonitor | None) -> tuple[str, str, float] | None:
        model = self.holder.current
        if model is None or drift is None or self._drift_version != model.number:
            return None
        psi = drift.psi()
        return None if psi is None else (model.name, str(model.number), psi)

    def readiness(self) -> ReadinessResponse:
        model = self.holder.current
        failure = self.holder.last_failure
        if model is None:
            detail = f"no model loaded: {failure.reason}" if failure else "loading the model"
        elif failure is not None:
            detail = f"serving {model.name} version {model.number}; version {failure.version} was refused: {failure.reason}"
        else:
            detail = f"serving {model.name} version {model.number} on {model.provider}"
        if model is not None and model.scale.fallback:
            detail += f"; {MSG_UNCALIBRATED.format(name=model.name, version=model.number)}"
        if model is not None and not (line := pass_line(model.manifest)).certified:
            detail += f"; pass line {line.promise}"
        capacity = self.capacity.estimate()
        if model is not None:
            detail += f"; {capacity.describe()}"
        pacs = self.pacs_status()
        if pacs is not None and pacs.state == "degraded":
            detail += f"; PACS degraded: {pacs.waiting} scan(s) waiting in the outbox ({pacs.last_error})"
        announcements = "off"
        if self.watcher is not None and self.watcher.redis_url:
            announcements = "subscribed" if self.watcher.subscribed else "disconnected"
        return ReadinessResponse(
            ready=self.ready and model is not None,
            detail=detail,
            model=None
            if model is None
            else ModelStatus(
                name=model.name,
                version=model.number,
                task=model.task,
                threshold=model.threshold,
                target_rejection=model.target_rejection,
                provider=model.provider,
                loaded_at=model.loaded_at,
                display_scale=model.scale.scale,
                display_threshold=model.scale.display_threshold,
                out_of_scope_check=model.scale.ood_threshold is not None,
                pass_line=PassLineOut.of(model),
            ),
            provider=ProviderStatus(
                name=None if model is None else model.provider,
                preferred=self.providers.preferred,
                requested=list(self.providers.requested),
                available=list(self.providers.available),
                fallback=model is not None and model.provider != self.providers.preferred,
            ),
            workers=self.threads.workers,
            intra_op_threads=self.threads.intra_op_threads,
            frames_on_loop=self.threads.frames_on_loop,
            announcements=announcements,  # type: ignore[arg-type]
            last_swap=swap_report(self.holder.last_swap),
            swap_failure=swap_report(failure),
            pacs=pacs,
            capacity=CapacityOut(**dataclasses.asdict(capacity), open_streams=self.sessions.open),
        )

    def pacs_status(self) -> PacsStatus | None:
        if self.delivery is None or self.outbox is None:
            return None
        status = self.delivery.status
        return PacsStatus(
            url=status.url,
            state=status.state,
            waiting=self.outbox.count(),
            delivered=status.delivered,
            refused=status.refused,
            failing_since=status.failing_since,
            last_error=status.last_error,
        )


def swap_report(outcome: SwapOutcome | None) -> SwapReport | None:
    """A swap outcome as the API reports it (readiness, control responses)."""
    if outcome is None:
        return None
    return SwapReport(
        status=outcome.status,
        version=outcome.version,
        previous_version=outcome.previous_version,
        trigger=outcome.trigger,
        reason=outcome.reason,
        at=outcome.at,
    )
