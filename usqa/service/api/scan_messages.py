"""The /ws/scan protocol: every JSON message, as a schema and its builder (docs/service.md shows them in order).

Client -> server: binary messages are frames; text messages are `ScanHello` (declare the frame format) or
`ScanEnd` (finish: the server scores the pending frame, sends the summary and closes with 1000).
Server -> client: `ScanReady` once, `ScanConfigured` after each hello, `ScanResult` per scored frame,
`ScanError` for a frame or message it could not use, `ModelSwap` when a new version takes over, and
`ScanSummary` last.

Messages sent per frame (`result_message`, `error_message`) are built as plain dicts, without pydantic: a
stream sends one per frame within its frame budget. A result's dict is made once, when it is sent, from the
typed `StreamResult` (usqa/service/live/results.py) that the session record also reads. The tests check each
builder against its schema. The summary is `ScanSessionStats.summary()` (usqa/service/live/sessions.py), the
session's own statistics. The protocol's words (message types, verdicts, close codes) are in
usqa/contracts/protocol.py.
"""

from __future__ import annotations

import reprlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from usqa.contracts.protocol import MessageType, Reason, Verdict
from usqa.service.api.schemas import (
    ModelRef,
    PassLineOut,
    PredictionOut,
    milliseconds,
    prediction_dict,
    rounded,
)
from usqa.service.frames.dicom_uids import (
    STUDY_FIELD_RULES,
    UID_MAX_LENGTH,
    UID_PATTERN,
    valid_study_field,
)
from usqa.service.inference.guidance import GuidanceConfig
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.scoring import MSG_ONE_FRAME_PER_MESSAGE
from usqa.service.live.results import StreamResult

PROTOCOL_VERSION = 1

# Messages clients see (close reasons must fit in 123 bytes).
_EXPECTED = f"'{MessageType.HELLO}' or '{MessageType.END}'"
MSG_BAD_JSON = f"text messages must be JSON objects with a 'type' ({_EXPECTED})"
MSG_UNKNOWN_TYPE = "unknown message type {type!r}; expected " + _EXPECTED
MSG_BAD_HELLO = "invalid hello: {reason}"
MSG_MULTI_FRAME = MSG_ONE_FRAME_PER_MESSAGE
MSG_TOO_BIG = "message of {size} bytes exceeds the limit of {limit} bytes"
MSG_TOO_BIG_REASON = "message too big"
MSG_NO_MODEL_REASON = "no model loaded yet; try again later"
MSG_TOKEN_REASON = "missing or invalid bearer token"
MSG_SESSIONS_REASON = "too many scan sessions; try again later"
# A close reason is at most 123 bytes: the numbers, and where to read more (GET /readyz's `capacity`).
MSG_CAPACITY_REASON = "at capacity: {streams} streams at {fps:g} fps on this machine; try again later"
MSG_CLIENT_SESSIONS_REASON = (
    "too many scan sessions from this address: {limit} are open (USQA_SCAN_SLOTS_PER_CLIENT); try again later"
)
MSG_ORIGIN_REASON = "origin not allowed (USQA_SCAN_ALLOWED_ORIGINS)"
MSG_FIRST_MESSAGE_REASON = "no hello or frame within {seconds:g} s of opening (USQA_SCAN_FIRST_MESSAGE_S)"
MSG_IDLE_REASON = "no frame for {seconds:g} s (USQA_SCAN_IDLE_TIMEOUT_S)"
MSG_FRAME_INTERNAL_ERROR = "internal error while scoring this frame"
# A client's unknown `type` is echoed in the error, cut short: it may be a megabyte string or nested lists.
SHOWN_TYPE_CHARS = 40
_TYPE_REPR = reprlib.Repr()
_TYPE_REPR.maxlevel, _TYPE_REPR.maxstring, _TYPE_REPR.maxother = 2, SHOWN_TYPE_CHARS, SHOWN_TYPE_CHARS
_TYPE_REPR.maxlist = _TYPE_REPR.maxdict = 3

FrameFormat = Literal["encoded", "raw"]
# DICOM instances one hello may name (a folder of files streams several; the session keeps the first 64).
MAX_HELLO_DICOM = 64
DicomUid = Annotated[str, Field(max_length=UID_MAX_LENGTH, pattern=UID_PATTERN.pattern)]


class DicomInstance(BaseModel):
    """A DICOM instance the stream's frames come from: the session report names it."""

    study_instance_uid: DicomUid
    series_instance_uid: DicomUid
    sop_instance_uid: DicomUid


class HelloStudy(BaseModel):
    """The study a stream's captures and report are filed in (docs/pacs.md): every field optional, each checked
    against its DICOM value representation. Without a Study Instance UID usqa opens a study of its own."""

    model_config = {"extra": "forbid"}

    study_instance_uid: DicomUid | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    accession_number: str | None = None
    study_id: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    referring_physician_name: str | None = None

    @field_validator(*STUDY_FIELD_RULES)
    @classmethod
    def _valid_for_its_vr(cls, value: str | None, info: Any) -> str | None:
        if value is not None and not valid_study_field(info.field_name, value):
            longest, pattern = STUDY_FIELD_RULES[info.field_name]
            raise ValueError(f"not a valid DICOM value (at most {longest} characters matching {pattern!r})")
        return value


class ScanHello(BaseModel):
    """Client hello: `encoded` frames (PNG, JPEG, BMP, TIFF or DICOM, sniffed) or `raw` 8-bit grayscale;
    `dicom` names the DICOM instances the frames were decoded from, when the client read them from DICOM;
    `study` the study its captures and report belong to (the source's, for DICOM)."""

    type: Literal[MessageType.HELLO] = MessageType.HELLO
    format: FrameFormat = "encoded"
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    dicom: list[DicomInstance] = Field(default_factory=list, max_length=MAX_HELLO_DICOM)
    study: HelloStudy | None = None
    # Switch the stream to another served exam's model (GET /models); answered with `model_swap`.
    model: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _raw_needs_size(self) -> ScanHello:
        if self.format == "raw" and (self.width is None or self.height is None):
            raise ValueError("raw frames need width and height")
        return self


class ScanEnd(BaseModel):
    type: Literal[MessageType.END] = MessageType.END


class GuidanceParameters(BaseModel):
    smoothing: float
    margin: float
    dwell_frames: int


class ScanReady(BaseModel):
    type: Literal[MessageType.READY] = MessageType.READY
    protocol: int = PROTOCOL_VERSION
    session: str
    model: ModelRef
    threshold: float
    target_rejection: float
    display_scale: str = Field(
        description="p_correct (P(the task model is right), schema_version 3), percentile (v2) or raw (v1)"
    )
    display_threshold: float = Field(description="The threshold on the display scale; the gauge's tick")
    out_of_scope_check: bool
    pass_line: PassLineOut
    guidance: GuidanceParameters
    max_message_bytes: int


class ScanConfigured(BaseModel):
    type: Literal[MessageType.CONFIGURED] = MessageType.CONFIGURED
    format: FrameFormat
    width: int | None
    height: int | None


class LatencyMs(BaseModel):
    decode: float
    queue: float
    inference: float
    total: float = Field(description="From the frame's arrival to its result being sent")


class ModelVersionRef(BaseModel):
    name: str
    version: int


class ScanResult(BaseModel):
    type: Literal[MessageType.RESULT] = MessageType.RESULT
    seq: int = Field(description="Index of the frame among the binary messages of this stream, from 0")
    verdict: Verdict = Field(description="The stream's verdict after smoothing and dwell (= guidance)")
    reason: Reason = Field(description="Why the stream is in that verdict")
    score: float = Field(description="Raw controller score of this frame")
    display_score: float = Field(description="This frame's score on the display scale")
    display_threshold: float
    smoothed_score: float | None = Field(description="Moving average of in-scope display scores")
    p_amenable: float | None
    ood_distance: float | None
    amenable: bool = Field(description="This frame alone is good: in scope, with signal, above the threshold")
    threshold: float
    guidance: Verdict
    guidance_changed: bool
    prediction: PredictionOut
    latency_ms: LatencyMs
    dropped: int = Field(description="Frames of this stream replaced by newer ones so far")
    model: ModelVersionRef
    captured: list[int] | None = Field(
        description="When this frame entered the session's auto-captures: the seqs of every kept frame, "
        "best first (GET /sessions/{session}/captures/{rank}.png); null when the captures did not change"
    )
    looks_like: str | None = Field(
        default=None,
        description="Out of scope here but in scope for this other served exam's model (GET /models)",
    )


class ScanError(BaseModel):
    type: Literal[MessageType.ERROR] = MessageType.ERROR
    seq: int | None
    code: str
    message: str


class ModelSwap(BaseModel):
    """A new version of the session's model took over, or (`from_model` set) the hello switched exams."""

    type: Literal[MessageType.MODEL_SWAP] = MessageType.MODEL_SWAP
    from_model: str | None = Field(default=None, description="The previous exam's model, on an exam switch")
    from_version: int | None
    to_version: int
    model: ModelRef
    threshold: float
    pass_line: PassLineOut


class FrameCounts(BaseModel):
    received: int
    scored: int
    dropped: int
    failed: int


class HistogramOut(BaseModel):
    edges: list[float]
    counts: list[int]


class LatencyPercentiles(BaseModel):
    p50: float | None
    p90: float | None
    p99: float | None


class DriftOut(BaseModel):
    psi: float | None = Field(description="Population stability index against the validation histogram")
    frames: int


class ScanSummary(BaseModel):
    type: Literal[MessageType.SUMMARY] = MessageType.SUMMARY
    session: str
    duration_s: float
    frames: FrameCounts
    drop_rate: float
    amenable_fraction: float | None
    mean_score: float | None
    score_histogram: HistogramOut
    guidance_frames: dict[str, int]
    latency_ms: LatencyPercentiles
    drift: DriftOut
    model_versions: list[int]


SERVER_MESSAGES: dict[MessageType, type[BaseModel]] = {
    MessageType.READY: ScanReady,
    MessageType.CONFIGURED: ScanConfigured,
    MessageType.RESULT: ScanResult,
    MessageType.ERROR: ScanError,
    MessageType.MODEL_SWAP: ModelSwap,
    MessageType.SUMMARY: ScanSummary,
}
CLIENT_MESSAGES: dict[MessageType, type[BaseModel]] = {MessageType.HELLO: ScanHello, MessageType.END: ScanEnd}


class ShownType:
    """A client's `type` value as `{type!r}` shows it: short strings as sent, anything else abbreviated."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        if isinstance(self.value, str) and len(self.value) <= SHOWN_TYPE_CHARS:
            return repr(self.value)
        return _TYPE_REPR.repr(self.value)


def ready_message(
    session: str, model: LoadedModel, guidance: GuidanceConfig, max_message_bytes: int
) -> dict[str, Any]:
    return ScanReady(
        session=session,
        model=ModelRef.of(model),
        threshold=model.threshold,
        target_rejection=model.target_rejection,
        display_scale=model.scale.scale,
        display_threshold=model.scale.display_threshold,
        out_of_scope_check=model.scale.ood_threshold is not None,
        pass_line=PassLineOut.of(model),
        guidance=GuidanceParameters(
            smoothing=guidance.smoothing, margin=guidance.margin, dwell_frames=guidance.dwell_frames
        ),
        max_message_bytes=max_message_bytes,
    ).model_dump(mode="json")


def configured_message(hello: ScanHello) -> dict[str, Any]:
    return {
        "type": MessageType.CONFIGURED,
        "format": hello.format,
        "width": hello.width,
        "height": hello.height,
    }


def result_message(result: StreamResult, captured: list[int] | None = None) -> dict[str, Any]:
    """The message of a scored frame; `captured`: the kept frames' seqs when this frame changed them."""
    scored, update, timing = result.scored, result.update, result.timing
    return {
        "type": MessageType.RESULT,
        "seq": result.seq,
        "verdict": update.state,
        "reason": update.reason,
        "score": round(scored.score, 6),
        "display_score": round(scored.display_score, 6),
        "display_threshold": round(scored.display_threshold, 6),
        "smoothed_score": rounded(update.smoothed_score),
        "p_amenable": rounded(scored.p_amenable),
        "ood_distance": rounded(scored.ood_distance),
        "amenable": result.amenable,
        "threshold": scored.threshold,
        "guidance": update.state,
        "guidance_changed": update.changed,
        "prediction": prediction_dict(scored.prediction),
        "latency_ms": {
            "decode": milliseconds(timing.prepare_s),
            "queue": milliseconds(timing.queue_s),
            "inference": milliseconds(timing.inference_s),
            "total": milliseconds(result.total_s),
        },
        "dropped": result.dropped,
        "model": {"name": result.model_name, "version": result.model_version},
        "captured": captured,
        "looks_like": result.looks_like,
    }


def error_message(seq: int | None, code: str, message: str) -> dict[str, Any]:
    return {"type": MessageType.ERROR, "seq": seq, "code": code, "message": message}


def model_swap_message(previous: LoadedModel | None, model: LoadedModel) -> dict[str, Any]:
    switched = previous is not None and previous.name != model.name
    return {
        "type": MessageType.MODEL_SWAP,
        "from_model": previous.name if switched and previous is not None else None,
        "from_version": None if previous is None else previous.number,
        "to_version": model.number,
        "model": ModelRef.of(model).model_dump(mode="json"),
        "threshold": model.threshold,
        "pass_line": PassLineOut.of(model).model_dump(mode="json"),
    }
