"""Response schemas of the HTTP API (in the OpenAPI document); the WebSocket's are in `scan_messages`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from usqa.contracts.protocol import Reason, Verdict
from usqa.service.datasets.uploads import DatasetInfo as DatasetResponse
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.predictions import ClassPrediction, MaskPrediction, Prediction
from usqa.service.inference.scoring import ScoredBatch
from usqa.service.jobs.queue import JobStatus
from usqa.service.registry.pass_line import pass_line


def rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def milliseconds(seconds: float) -> float:
    """A duration as the API reports it: milliseconds to the microsecond."""
    return round(seconds * 1000, 3)


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong, for people")
    code: str = Field(description="Stable machine-readable error code")


class ModelRef(BaseModel):
    name: str
    version: int
    task: Literal["classify", "segment"]
    class_names: list[str]

    @classmethod
    def of(cls, model: LoadedModel) -> ModelRef:
        return cls(name=model.name, version=model.number, task=model.task, class_names=model.class_names)  # type: ignore[arg-type]


class Timings(BaseModel):
    decode_ms: float = Field(description="Decoding and preparing the frame(s)")
    queue_ms: float = Field(description="Waiting for an inference worker")
    inference_ms: float = Field(description="Running the graphs on the batch that held the frame")
    total_ms: float = Field(description="From request received to response ready")


class BoundingBoxOut(BaseModel):
    """In source-frame pixels: x right, y down, from the top-left corner."""

    x: float
    y: float
    width: float
    height: float


class ClassPredictionOut(BaseModel):
    task: Literal["classify"] = "classify"
    label: str
    probability: float
    probabilities: dict[str, float]

    @classmethod
    def of(cls, p: ClassPrediction) -> ClassPredictionOut:
        return cls(label=p.label, probability=round(p.probability, 6), probabilities=p.probabilities)


class MaskPredictionOut(BaseModel):
    task: Literal["segment"] = "segment"
    mask_area_fraction: float = Field(description="Share of the imaged part of the frame inside the mask")
    bounding_box: BoundingBoxOut | None = Field(description="Box around the mask; null for an empty mask")
    mask_png_base64: str | None = Field(
        default=None, description="With mask=true: the binary mask (0/255), source-frame size, PNG, base64"
    )
    outlines: list[list[tuple[float, float]]] | None = Field(
        default=None, description="Mask outlines as (x, y) polygons in source pixels (stream results)"
    )

    @classmethod
    def of(cls, p: MaskPrediction) -> MaskPredictionOut:
        box = p.bounding_box
        return cls(
            mask_area_fraction=round(p.area_fraction, 6),
            bounding_box=None
            if box is None
            else BoundingBoxOut(x=box.x, y=box.y, width=box.width, height=box.height),
            mask_png_base64=p.mask_png_base64,
            outlines=p.outlines,
        )


PredictionOut = Annotated[ClassPredictionOut | MaskPredictionOut, Field(discriminator="task")]


def prediction_out(p: Prediction) -> ClassPredictionOut | MaskPredictionOut:
    return ClassPredictionOut.of(p) if isinstance(p, ClassPrediction) else MaskPredictionOut.of(p)


def prediction_dict(p: Prediction) -> dict[str, Any]:
    """`prediction_out(p)` as a JSON-ready dict, built without pydantic: stream results make one per frame.

    Optional fields that are None are left out; the schema tests check it validates as `PredictionOut`.
    """
    if isinstance(p, ClassPrediction):
        return {
            "task": "classify",
            "label": p.label,
            "probability": round(p.probability, 6),
            "probabilities": p.probabilities,
        }
    box = p.bounding_box
    out: dict[str, Any] = {
        "task": "segment",
        "mask_area_fraction": round(p.area_fraction, 6),
        "bounding_box": None
        if box is None
        else {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
    }
    if p.mask_png is not None:
        out["mask_png_base64"] = p.mask_png_base64
    if p.outlines is not None:
        out["outlines"] = p.outlines
    return out


class FrameAssessment(BaseModel):
    index: int = Field(description="Frame index in the upload (0 for a single image)")
    verdict: Verdict = Field(
        description="The one verdict: good, adjust, no_signal (checked before padding) or out_of_scope"
    )
    reason: Reason = Field(
        description="Why: amenable, low_score, blank, saturated, no_contact, out_of_distribution"
    )
    amenability_score: float = Field(
        description="Raw controller score in [0, 1]: how usable the frame is for the task"
    )
    display_score: float = Field(
        description="The score on the model's display scale (percentile of validation scores; raw for v1)"
    )
    display_threshold: float = Field(description="The threshold on the display scale")
    p_amenable: float | None = Field(
        default=None, description="P(amenable | score), isotonic on labelled validation frames"
    )
    ood_distance: float | None = Field(
        default=None,
        description="Distance to the training frames; out of scope above the manifest's threshold",
    )
    amenable: bool = Field(description="True exactly when the verdict is good")
    threshold: float = Field(description="Raw threshold calibrated at the configured target rejection rate")
    prediction: PredictionOut
    timings: Timings
    looks_like: str | None = Field(
        default=None, description="Out of scope here but in scope for this other served exam's model"
    )


class AssessResponse(BaseModel):
    model: ModelRef
    target_rejection: float = Field(description="Share of validation frames the threshold rejects")
    threshold: float
    frame_count: int
    frames: list[FrameAssessment]
    timings: Timings

    @classmethod
    def of(cls, batch: ScoredBatch, total_s: float, hints: Mapping[int, str] | None = None) -> AssessResponse:
        """The answer for a scored upload; per frame, decoding is the upload's share, the rest its batch's;
        `hints`: frame index -> the served exam an out-of-scope frame looks like."""
        hints = hints or {}
        model, timing, count = batch.model, batch.timing, len(batch.frames)
        per_frame = Timings(
            decode_ms=milliseconds(timing.prepare_s / max(count, 1)),
            queue_ms=milliseconds(timing.queue_s),
            inference_ms=milliseconds(timing.inference_s),
            total_ms=milliseconds(total_s),
        )
        return cls(
            model=ModelRef.of(model),
            target_rejection=model.target_rejection,
            threshold=model.threshold,
            frame_count=count,
            frames=[
                FrameAssessment(
                    index=frame.index,
                    verdict=frame.verdict.verdict,
                    reason=frame.verdict.reason,
                    amenability_score=round(frame.score, 6),
                    display_score=round(frame.display_score, 6),
                    display_threshold=round(frame.display_threshold, 6),
                    p_amenable=rounded(frame.p_amenable),
                    ood_distance=rounded(frame.ood_distance),
                    amenable=frame.amenable,
                    threshold=frame.threshold,
                    prediction=prediction_out(frame.prediction),
                    timings=per_frame,
                    looks_like=hints.get(frame.index),
                )
                for frame in batch.frames
            ],
            timings=Timings(
                decode_ms=milliseconds(timing.prepare_s),
                queue_ms=milliseconds(timing.queue_s),
                inference_ms=milliseconds(timing.inference_s),
                total_ms=milliseconds(total_s),
            ),
        )


class PassLineOut(BaseModel):
    """What the pass line promises (usqa.service.registry.pass_line.py)."""

    rejector: str = Field(description="The served rejector: controller, softmax, doctor or fused")
    certified: bool
    alpha: float | None = Field(description="The certified risk among frames called good")
    delta: float | None = Field(description="The chance the promise does not hold")
    promise: str = Field(description="The promise in one sentence, or 'not certified' and why")

    @classmethod
    def of(cls, model: LoadedModel) -> PassLineOut:
        return cls(**dataclasses.asdict(pass_line(model.manifest)))


class ModelStatus(BaseModel):
    name: str
    version: int
    task: str
    threshold: float
    target_rejection: float
    provider: str
    loaded_at: float
    display_scale: str = Field(
        description="p_correct (P(the task model is right), schema_version 3), percentile (v2) or raw (v1)"
    )
    display_threshold: float
    out_of_scope_check: bool = Field(description="False for v1 manifests: no OOD threshold to judge by")
    pass_line: PassLineOut


class ProviderStatus(BaseModel):
    name: str | None = Field(description="The provider the served sessions run on")
    preferred: str = Field(description="The first configured provider this onnxruntime offers")
    requested: list[str]
    available: list[str]
    fallback: bool = Field(
        description="True when the sessions run on a provider other than the preferred one"
    )


class SwapReport(BaseModel):
    status: str
    version: int | None
    previous_version: int | None
    trigger: str
    reason: str | None
    at: float


class PacsStatus(BaseModel):
    """Deliveries to the hospital's archive (docs/pacs.md): `degraded` while the PACS cannot be reached; scans
    go on and their objects wait in the outbox."""

    url: str
    state: Literal["ok", "degraded"]
    waiting: int = Field(description="Finished scans whose objects wait in the outbox")
    delivered: int = Field(description="Scans delivered since the service started")
    refused: int = Field(description="Scans the PACS refused (kept in the outbox's refused/ folder)")
    failing_since: float | None = Field(description="Wall clock of the first failed try, while failing")
    last_error: str | None


class CapacityOut(BaseModel):
    """What the service can carry (usqa/service/inference/capacity.py, docs/service.md "Capacity")."""

    frames_per_second: float | None = Field(description="Estimated saturation; null before any measure")
    streams: int | None = Field(description="Streams admitted at stream_fps, keeping the headroom")
    open_streams: int
    stream_fps: float
    headroom: float
    bound: Literal["workers", "event_loop", "cpu"] | None
    basis: Literal["measured", "export", "unknown"]
    bounds: dict[str, float] = Field(description="Frames/s each bound allows")
    cost_ms: dict[str, float] = Field(
        description="Per-frame cost behind each bound, as measured at this load"
    )
    measured_frames: int
    warm_ratio: float | None = Field(
        default=None,
        description="Per-frame CPU of warm work (batches taken back to back, the probe's warmest run) over all "
        "batches': the bounds take off the wake-ups it shows (saturation's regime); null before one is measured",
    )


class ReadinessResponse(BaseModel):
    ready: bool
    detail: str
    model: ModelStatus | None
    provider: ProviderStatus
    workers: int
    intra_op_threads: int
    frames_on_loop: bool = Field(
        default=False,
        description="Stream frames run on the event loop itself (one core), not a worker thread",
    )
    announcements: Literal["subscribed", "disconnected", "off"]
    last_swap: SwapReport | None
    swap_failure: SwapReport | None = Field(description="The last refused version, while an older one serves")
    pacs: PacsStatus | None = Field(
        default=None, description="Deliveries to the PACS, when USQA_PACS_URL is set"
    )
    capacity: CapacityOut | None = None


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


# An alias name: 1 to 64 letters, digits, '-', '_' or '.', not starting with '.' (usqa.service.registry.trust).
AliasName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")]


class PromoteRequest(BaseModel):
    ref: str = Field(description="Version number, alias or 'latest'", max_length=64)
    alias: AliasName = "champion"


class RollbackRequest(BaseModel):
    alias: AliasName = "champion"


class ControlResponse(BaseModel):
    name: str
    alias: str
    version: int = Field(description="The version the alias now names")
    served_version: int | None = Field(description="The version this instance serves after the call")
    swap: SwapReport | None = Field(description="This instance's swap, when the alias it serves moved")


class ModelVersions(BaseModel):
    name: str
    versions: list[int]
    aliases: dict[str, int]
    served_version: int | None


class CineFrames(BaseModel):
    """Frames for the live page to play: PNG data URLs in order."""

    source: str
    fps: float
    width: int
    height: int
    frames: list[str]


class DatasetList(BaseModel):
    datasets: list[DatasetResponse]


class JobList(BaseModel):
    jobs: list[JobStatus]
