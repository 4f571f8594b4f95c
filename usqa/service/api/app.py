"""The app factory: `create_app(settings)`; the lifespan loads and warms the champion before /readyz is ready."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from usqa.contracts.version import __version__
from usqa.service.api import log_redaction
from usqa.service.api.body_limits import BodyLimits
from usqa.service.api.error_handlers import install_handlers
from usqa.service.api.errors import (
    MIN_PRODUCTION_TOKEN_CHARS,
    TOKEN_REQUIRED_IN_PRODUCTION,
    TOKEN_TOO_WEAK_IN_PRODUCTION,
    ConfigurationError,
)
from usqa.service.api.metrics import ServiceMetrics
from usqa.service.api.openapi_errors import document_error_shape
from usqa.service.api.routes import (
    assess,
    cards,
    control,
    datasets,
    docs,
    exams,
    jobs,
    live,
    ops,
    protocol,
    scan,
    sessions,
)
from usqa.service.api.routes.live import STATIC_DIR
from usqa.service.api.state import ServiceState
from usqa.service.datasets.uploads import sweep_staging
from usqa.service.frames.lane import DecodeLane
from usqa.service.heap import freeze_startup_objects, thaw_startup_objects
from usqa.service.inference.batcher import InferenceQueue
from usqa.service.inference.capacity import CapacityMeter, sample_periodically
from usqa.service.inference.model import LoadedModel, load_model
from usqa.service.inference.providers import ProviderPlan, ThreadPlan, plan_providers, plan_threads
from usqa.service.inference.scoring import FrameScorer
from usqa.service.inference.served_models import ServedModels, served_names
from usqa.service.inference.verdict import signal_limits
from usqa.service.inference.watcher import RegistryWatcher
from usqa.service.jobs import JobClient
from usqa.service.live.session_store import SessionStore, sweep_periodically
from usqa.service.live.sessions import SessionLimiter
from usqa.service.record.outbox import Outbox, OutboxSender
from usqa.service.record.stow import StowClient
from usqa.service.registry import ModelVersion, open_registry
from usqa.service.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Start-up waits this long for the Redis subscription, so an announcement right after /readyz is heard.
ANNOUNCEMENT_WAIT_S = 3.0
TOKEN_FOR_SCORING_WITHOUT_TOKEN = "USQA_REQUIRE_TOKEN_FOR_SCORING is set but USQA_API_TOKEN is empty"


def check_settings(settings: Settings) -> None:
    """Unsafe combinations fail at start-up, loudly."""
    if settings.environment == "production" and not settings.api_token:
        raise ConfigurationError(TOKEN_REQUIRED_IN_PRODUCTION)
    if settings.environment == "production" and not _strong(settings.api_token or ""):
        raise ConfigurationError(TOKEN_TOO_WEAK_IN_PRODUCTION)
    if settings.require_token_for_scoring and not settings.api_token:
        raise ConfigurationError(TOKEN_FOR_SCORING_WITHOUT_TOKEN)


def _strong(token: str) -> bool:
    return len(token) >= MIN_PRODUCTION_TOKEN_CHARS and not any(c.isspace() for c in token)


def _load(
    version: ModelVersion, *, settings: Settings, providers: ProviderPlan, threads: ThreadPlan
) -> LoadedModel:
    return load_model(
        version,
        target_rejection=settings.target_rejection,
        providers=providers,
        intra_op_threads=threads.intra_op_threads,
        warmup_runs=settings.warmup_runs,
        warmup_batch=settings.max_batch_frames,
    )


def build_state(settings: Settings) -> ServiceState:
    providers = plan_providers(settings.providers, settings.require_provider)
    threads = plan_threads(
        settings.inference_workers,
        settings.intra_op_threads,
        frames_on_loop=settings.stream_frames_on_loop,
    )
    log.info(
        "execution providers in order %s (offered: %s); %d inference workers x %d intra-op threads%s",
        list(providers.order),
        list(providers.available),
        threads.workers,
        threads.intra_op_threads,
        "; stream frames on the event loop" if threads.frames_on_loop else "",
    )
    metrics = ServiceMetrics()
    registry = open_registry(settings)
    names = served_names(registry, settings.model_name, settings.model_names, settings.model_alias)
    models = ServedModels(
        registry,
        names,
        settings.model_alias,
        partial(_load, settings=settings, providers=providers, threads=threads),
    )
    capacity = CapacityMeter(
        workers=threads.workers,
        stream_fps=settings.stream_fps,
        headroom=settings.capacity_headroom,
        export_cost_s=partial(exported_cost_s, models),
        frames_on_loop=threads.frames_on_loop,
    )
    queue = InferenceQueue(
        workers=threads.workers,
        max_batch_frames=settings.max_batch_frames,
        max_pending=settings.max_pending_requests,
        retry_after_s=settings.retry_after_s,
        on_batch=partial(_observe_batch, metrics),
        on_work=capacity.observe_work,
        on_probe=capacity.observe_probe,
        frames_on_loop=threads.frames_on_loop,
    )
    state = ServiceState(
        settings=settings,
        metrics=metrics,
        providers=providers,
        threads=threads,
        holder=models.default,
        models=models,
        capacity=capacity,
        queue=queue,
        scorer=FrameScorer(
            queue,
            max_pixels=settings.max_frame_pixels,
            max_frames=settings.max_frames_per_input,
            limits=signal_limits(settings),
            max_decoded_pixels=settings.max_decoded_pixels,
            lane=DecodeLane(
                settings.decode_lane_workers,
                settings.decode_lane_waiting,
                settings.retry_after_s,
                processes=settings.decode_lane_processes,
            ),
            max_decode_s=settings.max_decode_s,
        ),
        sessions=SessionLimiter(settings.max_scan_sessions, settings.scan_slots_per_client),
        records=SessionStore(
            settings.max_stored_sessions,
            settings.session_store_bytes,
            settings.sessions_dir,
            retention_s=settings.session_retention_s,
        ),
        jobs=JobClient(settings) if settings.broker else None,
    )
    if settings.pacs_url:
        state.outbox, state.delivery = _pacs_delivery(settings, metrics)
    metrics.track_pending(lambda: queue.pending)
    metrics.track_capacity(capacity.estimate)
    metrics.track_drift(state.drift_now, state.ood_drift_now)
    models.subscribe(state.on_model_event)
    return state


def _pacs_delivery(settings: Settings, metrics: ServiceMetrics) -> tuple[Outbox, OutboxSender]:
    assert settings.pacs_url is not None
    outbox = Outbox(settings.pacs_outbox_dir)
    sender = OutboxSender(
        outbox,
        StowClient(settings.pacs_url, timeout_s=settings.pacs_timeout_s),
        retry_min_s=settings.pacs_retry_min_s,
        retry_max_s=settings.pacs_retry_max_s,
        on_delivered=metrics.pacs_delivered.inc,
        on_failure=lambda kind: metrics.pacs_failures.labels(kind).inc(),
    )
    metrics.track_pacs(outbox.count, lambda: float(sender.status.state == "degraded"))
    return outbox, sender


def exported_cost_s(models: ServedModels) -> float | None:
    """The costliest served version's per-frame cost measured at export, in seconds (None: none recorded)."""
    costs = [
        holder.current.manifest.cost.frame_ms / 1000
        for holder in models
        if holder.current is not None and holder.current.manifest.cost is not None
    ]
    return max(costs, default=None)


def _observe_batch(metrics: ServiceMetrics, model: LoadedModel, frames: int, seconds: float) -> None:
    labels = (model.name, str(model.number))  # once per batch, from a worker thread
    metrics.exec_count.labels(*labels).inc()
    metrics.inference_count.labels(*labels).inc(frames)
    metrics.compute_duration.labels(*labels).observe(seconds)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    state = build_state(settings)
    app.state.service = state
    # Uploads killed mid-way (SIGKILL, a crash) leave staging folders; this process's start ends them.
    sweep_staging(settings.data_root, at_start=True)
    state.queue.start()
    # Retention holds when nobody reads or streams too: expired sessions leave memory and disk on a timer.
    session_sweeper = asyncio.create_task(sweep_periodically(state.records))
    # The capacity meter's samples are read on the loop's own thread: its CPU time is the event loop's cost.
    capacity_sampler = asyncio.create_task(sample_periodically(state.capacity))
    # Scans filed while the PACS was down, by this process or an earlier one, go out from the start.
    delivery = None if state.delivery is None else asyncio.create_task(state.delivery.run())
    try:
        await state.models.refresh("startup")
        state.watcher = RegistryWatcher(
            list(state.models),
            redis_url=settings.redis_url,
            poll_s=settings.registry_poll_s,
            channel=settings.registry_channel,
        )
        state.watcher.start()
        if settings.redis_url and not await state.watcher.wait_subscribed(ANNOUNCEMENT_WAIT_S):
            log.warning(
                "registry announcements unavailable for now; polling every %.0f s", settings.registry_poll_s
            )
        # The models are loaded: what is alive now lives as long as the service (usqa.service.heap).
        freeze_startup_objects()
        state.ready = True
        yield
    finally:
        state.ready = False
        thaw_startup_objects()
        session_sweeper.cancel()
        capacity_sampler.cancel()
        if state.filing:  # scans that ended just before: their objects reach the outbox before we stop
            await asyncio.gather(*state.filing, return_exceptions=True)
        if delivery is not None and state.delivery is not None:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery
            await state.delivery.client.aclose()
        if state.watcher is not None:
            await state.watcher.stop()
        state.queue.stop()
        if state.scorer.lane is not None:
            state.scorer.lane.close()
        if state.jobs is not None:
            state.jobs.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The usqa API; `settings` defaults to the environment's (`USQA_*`)."""
    settings = settings or get_settings()
    check_settings(settings)
    log_redaction.install(
        log_redaction.secrets_of(
            settings.api_token,
            (settings.redis_url, settings.broker_url, settings.result_backend, settings.pacs_url),
        )
    )
    app = FastAPI(
        title="usqa",
        version=__version__,
        summary="Real-time ultrasound frame quality: task-amenability scores per frame",
        lifespan=lifespan,
        # Served by routes.docs from installed assets instead of FastAPI's CDN-loading pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_handlers(app)
    document_error_shape(app)
    for module in (assess, scan, exams, ops, control, cards, datasets, jobs, live, sessions, protocol, docs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    app.add_middleware(
        BodyLimits,
        max_inflight_bytes=settings.max_inflight_body_bytes,
        idle_timeout_s=settings.body_idle_timeout_s,
        read_timeout_s=settings.body_read_timeout_s,
        retry_after_s=settings.retry_after_s,
    )
    return app
