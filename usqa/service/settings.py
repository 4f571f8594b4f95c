"""All runtime settings in one place, read from `USQA_*` environment variables through `get_settings()`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "production"]
# onnxruntime's names, most preferred first; the service takes the first that this onnxruntime build offers.
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class Settings(BaseSettings):
    """Service and pipeline settings; tests build their own instance instead of patching the environment."""

    model_config = SettingsConfigDict(env_prefix="USQA_", env_file=None, extra="ignore")

    # Frame pipeline limits: a frame larger than this is refused before it is decoded into memory.
    max_frame_pixels: int = Field(default=4096 * 4096, gt=0)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # Request bodies held at once by all requests together (then 503), and how long a body may take: nothing
    # for the idle timeout, or not complete after the read timeout, is a 408 (usqa/service/api/body_limits.py).
    max_inflight_body_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    body_idle_timeout_s: float = Field(default=15.0, gt=0)
    body_read_timeout_s: float = Field(default=120.0, gt=0)
    # Multi-frame inputs (DICOM cine, video) stop with a clear error past this many frames.
    max_frames_per_input: int = Field(default=5000, gt=0)
    # Decoded pixels (frames x width x height) one request may produce: checked from the headers and again
    # while decoding, so a small file declaring or holding huge frames is refused before it is materialised.
    max_decoded_pixels: int = Field(default=128 * 1024 * 1024, gt=0)
    # A whole-file decode (a DICOM on /assess, anything on /cine/frames) stops with 413 past this many seconds
    # (checked between frames), and runs in a lane of its own: this many threads, with this many more requests
    # waiting (then 429), so such uploads never queue in front of stream frames on the inference workers.
    max_decode_s: float = Field(default=10.0, gt=0)
    decode_lane_workers: int = Field(default=1, gt=0)
    decode_lane_waiting: int = Field(default=8, ge=0)
    # Processes (the default) keep a codec that holds the GIL from stalling the stream; threads save a process.
    decode_lane_processes: bool = True

    # The writable model registry (publish, promote); relative to the working directory, as in a checkout.
    registry: Path = Path("models")
    # Also read the registry shipped with the package (read-only) for a model name `registry` lacks, so an
    # installed `usqa` serves and scores the default model from any folder (usqa/service/registry/locate.py).
    shipped_registry: bool = True
    data_root: Path = Path("runs/data")
    redis_url: str | None = None
    api_token: str | None = None

    # -- serving -----------------------------------------------------------------------------------------
    # "production" refuses to start without `api_token`; "dev" serves without one (control endpoints off).
    environment: Environment = "dev"
    model_name: str = "usqa-prostate"
    model_alias: str = "champion"
    # Other exams served beside `model_name` (the default, for callers that name none): names, or "*" for
    # every model of the registry whose alias resolves at start (usqa/service/inference/served_models.py).
    model_names: tuple[str, ...] = ("*",)
    # The operating point: the share of frames the service is allowed to call non-amenable; one of the
    # manifest's calibrated `thresholds` keys.
    target_rejection: float = Field(default=0.05, gt=0, lt=1)
    # When set, /assess and /ws/scan also need the bearer token (control endpoints always do).
    require_token_for_scoring: bool = False
    # `usqa serve` on an address other than loopback refuses to start without `api_token` (session reports
    # and captures are patient images) unless this says the network in front of it is trusted.
    trusted_network: bool = False

    # onnxruntime: providers by preference; `require_provider` makes start-up fail unless that one serves.
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    require_provider: str | None = None
    # Inference worker threads (0: one per CPU core) and onnxruntime threads per run (0: cores / workers),
    # so concurrent streams use the cores side by side instead of fighting over one thread pool.
    inference_workers: int = Field(default=0, ge=0)
    intra_op_threads: int = Field(default=0, ge=0)
    # Stream frames run on the event loop itself rather than a worker thread (unset: when the service has one
    # core, where a worker only takes turns with the loop: usqa/service/inference/batcher.py).
    stream_frames_on_loop: bool | None = None
    # Frames of several requests that are waiting together run as one batch, up to this many.
    max_batch_frames: int = Field(default=16, gt=0)
    # Requests (an /assess upload or one stream frame) waiting or running; beyond it /assess answers 429.
    max_pending_requests: int = Field(default=64, gt=0)
    retry_after_s: int = Field(default=1, ge=1)
    warmup_runs: int = Field(default=3, ge=0)

    # -- live scanning -----------------------------------------------------------------------------------
    max_scan_sessions: int = Field(default=16, gt=0)
    # Capacity (usqa/service/inference/capacity.py): streams are admitted up to what the measured per-frame cost
    # allows at `stream_fps` each, keeping `capacity_headroom` of the saturation rate; beyond it the next stream is
    # refused with 1013 (try again) instead of every stream slowing down. `max_scan_sessions` stays the hard cap.
    stream_fps: float = Field(default=30.0, gt=0, le=240)
    capacity_headroom: float = Field(default=0.8, gt=0, le=1)
    max_ws_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # A stream slot cannot be squatted: the first message (a hello or a frame) must come this soon after
    # the stream opens, and a frame at least this often (hellos do not count), or the stream is closed
    # with 1008 and its slot is free again.
    scan_first_message_s: float = Field(default=10.0, gt=0)
    scan_idle_timeout_s: float = Field(default=20.0, gt=0)
    # Streams one client address may hold at once (0: no such limit), so one machine cannot take every slot.
    # Loopback clients (this host: the demo, benchmarks) are not counted. Behind a proxy every stream comes
    # from the proxy's address unless uvicorn trusts its X-Forwarded-For (docs/deploy.md): there, 0.
    scan_slots_per_client: int = Field(default=4, ge=0)
    # Browser origins allowed to open /ws/scan besides the service's own ("*": any). A client that sends no
    # Origin is not a browser and is not refused for it; a browser page elsewhere on the ward is.
    scan_allowed_origins: tuple[str, ...] = ()
    # Smoothed score: exponential moving average weight of the newest frame.
    guidance_smoothing: float = Field(default=0.4, gt=0, le=1)
    # Hysteresis: `good` is entered at threshold + margin and left below threshold - margin, each only
    # after `guidance_dwell_frames` consecutive frames agree, so the feedback does not flicker.
    guidance_margin: float = Field(default=0.03, ge=0, lt=0.5)
    guidance_dwell_frames: int = Field(default=3, gt=0)
    # A prepared frame this dark or this flat is no image at all (probe lifted, frozen, unplugged).
    no_signal_mean_level: float = Field(default=8.0, ge=0)
    no_signal_std_level: float = Field(default=3.0, ge=0)
    # Scores kept for the service-wide drift estimate (population stability index against validation).
    drift_window: int = Field(default=2000, gt=0)

    # -- hot swap ----------------------------------------------------------------------------------------
    # The registry is re-read this often even when Redis announcements arrive (they may be missed).
    registry_poll_s: float = Field(default=10.0, gt=0)
    # Redis pub/sub channel of registry announcements (usqa.service.registry.REGISTRY_CHANNEL).
    registry_channel: str = "usqa:registry"

    # -- retraining jobs (Celery) ----------------------------------------------------------------------
    # Broker and result backend default to `redis_url`; `usqa demo` may use kombu's filesystem transport and
    # Celery's file result backend where no Redis exists (see docs/deploy.md).
    broker_url: str | None = None
    result_backend: str | None = None
    # Job records and cancellation marks (shared by API replicas and workers, like the registry).
    jobs_root: Path = Path("runs/jobs")
    # Where workers keep each job's run folder (checkpoints make a redelivered job resume, not restart).
    work_root: Path = Path("runs/work")
    # Soft limit: the job stops cleanly and reports; hard limit: the worker child is killed. The broker's
    # visibility timeout must exceed the hard limit, or a long job would be redelivered while it still runs.
    job_soft_time_limit_s: int = Field(default=3 * 3600, gt=0)
    job_time_limit_s: int = Field(default=3 * 3600 + 300, gt=0)
    job_visibility_timeout_s: int = Field(default=4 * 3600, gt=0)
    job_max_retries: int = Field(default=3, ge=0)
    # Where workers train: "auto" takes CUDA when torch sees it, else the CPU (logged, and in each report).
    train_device: str = "auto"
    job_retry_backoff_s: int = Field(default=10, gt=0)
    # Promotion gate: the challenger becomes champion only if its selective task metric is at most this much
    # below the champion's on every evaluation set; with `auto_promote` off it waits for `usqa models promote`.
    auto_promote: bool = True
    promotion_margin: float = Field(default=0.01, ge=0, le=1)
    # Data-set uploads: the archive's size, and what it may unpack to (zip bombs).
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_unpacked_bytes: int = Field(default=2 * 1024 * 1024 * 1024, gt=0)
    max_archive_members: int = Field(default=200_000, gt=0)

    # Live page demo cine.
    demo_preset: str = "transrectal_prostate"
    # Its degradations: the shipped model's development mix, the views it is meant to flag (api/cine.py); the
    # held-out mix is kept for evaluation.
    demo_mix: Literal["standard", "evidence_loss"] = "evidence_loss"
    demo_frames: int = Field(default=150, gt=0, le=2000)

    # -- session reports (GET /sessions) -------------------------------------------------------------
    # Finished scan sessions kept in memory (least recently used go first), and the bytes their captured
    # frames may hold together; open streams are bounded by `max_scan_sessions`.
    max_stored_sessions: int = Field(default=32, ge=0)
    session_store_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    # Auto-capture: the best in-scope frames kept per session, at least this far apart in time, and no two the
    # same picture (32x32 thumbnails closer than this many grey levels on average; usqa/service/live/captures.py).
    captures_per_session: int = Field(default=6, ge=0, le=64)
    capture_spacing_s: float = Field(default=1.0, ge=0)
    capture_same_picture_level: float = Field(default=1.0, ge=0)
    # When set, each finished session is also written here (report.json and PNGs); never otherwise.
    sessions_dir: Path | None = None
    # A finished session (its report and captures, in memory and in `sessions_dir`) is deleted this long
    # after it ended (docs/privacy.md); DELETE /sessions/{id} removes one sooner.
    session_retention_s: float = Field(default=24 * 3600.0, gt=0)

    # -- the hospital's archive (docs/pacs.md) ----------------------------------------------------------------
    # A DICOMweb root (e.g. http://orthanc:8042/dicom-web): each finished scan's captures and report are
    # stored there by STOW-RS. They wait in `pacs_outbox_dir` until the PACS has them, retried with backoff
    # from `pacs_retry_min_s` doubling up to `pacs_retry_max_s`; unset, nothing is sent.
    pacs_url: str | None = None
    pacs_outbox_dir: Path = Path("runs/pacs-outbox")
    pacs_timeout_s: float = Field(default=30.0, gt=0)
    pacs_retry_min_s: float = Field(default=1.0, gt=0)
    pacs_retry_max_s: float = Field(default=60.0, gt=0)

    # -- scope checks (usqa/service/inference/verdict.py), judged on the frame before letterbox padding --------
    # Saturated: more than this share of pixels at 250 or above. No contact: more than this share of the
    # scan lines (columns) darker than 4 on average. Frozen: this many identical frames in a row in a stream
    # or an offline sequence (0 turns the check off).
    no_signal_saturated_fraction: float = Field(default=0.5, gt=0, le=1)
    no_signal_dark_line_fraction: float = Field(default=0.8, gt=0, le=1)
    no_signal_frozen_frames: int = Field(default=15, ge=0)

    @model_validator(mode="after")
    def _limits_in_order(self) -> Settings:
        if not self.job_soft_time_limit_s < self.job_time_limit_s < self.job_visibility_timeout_s:
            raise ValueError(
                "job limits must satisfy soft time limit < hard time limit < visibility timeout "
                f"(got {self.job_soft_time_limit_s} / {self.job_time_limit_s} / {self.job_visibility_timeout_s} s)"
            )
        return self

    @property
    def broker(self) -> str | None:
        return self.broker_url or self.redis_url

    @property
    def backend(self) -> str | None:
        return self.result_backend or self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
