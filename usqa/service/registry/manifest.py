"""The model manifest: everything a runtime needs to serve a version, and to check it is the one published."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from usqa.contracts.graphs import INPUT_DTYPE, INPUT_NAME, OOD_OUTPUT, RejectorName

MANIFEST_FILE = "manifest.json"
HASH_CHUNK_BYTES = 1 << 20


class InputSpec(BaseModel):
    """The graph input: 8-bit grayscale frames, batch axis dynamic."""

    model_config = ConfigDict(frozen=True)

    name: str = INPUT_NAME
    shape: tuple[str | int, ...] = ("N", 1, 128, 128)
    dtype: str = INPUT_DTYPE


class ScoreHistogram(BaseModel):
    """Controller scores on the validation split: the reference for drift monitoring."""

    model_config = ConfigDict(frozen=True)

    edges: list[float]
    counts: list[int]


class Calibration(BaseModel):
    """Raw controller score -> the score users see (schema_version 2; docs/service.md, "Display score").

    `score_quantiles[i]` is the validation scores' quantile at i / (len - 1): a score's display value on the
    `percentile` scale is its position among validation frames. With amenability labels, `isotonic_x/y` are
    the breakpoints of an isotonic fit of P(amenable | score) on `labelled_frames` validation frames.
    """

    model_config = ConfigDict(frozen=True)

    display_scale: Literal["percentile", "p_correct"] = "percentile"
    score_quantiles: list[float]
    isotonic_x: list[float] | None = None
    isotonic_y: list[float] | None = None
    labelled_frames: int = 0
    # schema_version 3, display_scale "p_correct": breakpoints of P(the task model is right | served score),
    # fitted on the certification's calibration frames; the display score interpolates them.
    correct_x: list[float] | None = None
    correct_y: list[float] | None = None
    # Its expected calibration error on the holdout's check frames, and the reliability diagram's bins.
    correct_ece: float | None = None
    reliability: list[dict[str, float]] | None = None


class RejectorSpec(BaseModel):
    """The served rejector: which formula over the graphs' outputs scores a frame, with its constants
    (schema_version 3; usqa/service/inference/rejectors.py). Without it the controller's score is served."""

    model_config = ConfigDict(frozen=True)

    name: RejectorName = "controller"
    temperature: float = Field(default=1.0, gt=0)
    weights: list[float] = Field(default_factory=list)
    bias: float = 0.0
    reason: str = ""  # why this one: the validation AURC of each, or forced
    validation_aurc: dict[str, float] = Field(default_factory=dict)


class Certification(BaseModel):
    """The pass line's promise (schema_version 3; usqa/trainer/amenability/certification.py): among frames at
    or above `threshold` (the served rejector's raw score) the task model fails at most `alpha` of the time,
    with probability at least 1 - `delta`. `certified` false: no line kept it, and `reason` says why."""

    model_config = ConfigDict(frozen=True)

    alpha: float
    delta: float
    threshold: float | None
    certified: bool
    reason: str
    method: str
    calibration_frames: int
    calibration_subjects: int
    calibration_coverage: float | None
    calibration_risk: float | None
    holdout_frames: int
    holdout_coverage: float | None
    holdout_risk: float | None


class OodCalibration(BaseModel):
    """The out-of-distribution check: a predictor-graph output and its threshold (schema_version 2)."""

    model_config = ConfigDict(frozen=True)

    method: Literal["mahalanobis"] = "mahalanobis"
    output: str = OOD_OUTPUT
    # Pooled predictor features plus frame statistics (see usqa/trainer/release/fitting.py), and the covariance shrinkage.
    feature_dim: int
    shrinkage: float
    # Distance above which a frame is out of scope: validation frames pass it at `false_alarm_rate`.
    threshold: float
    false_alarm_rate: float
    # The fitted frames (training split) and the validation frames the threshold was set on.
    fit_frames: int
    validation_frames: int
    validation_quantiles: list[float]


class DriftReference(BaseModel):
    """Quantile bins of validation scores and OOD distances: equal shares, so any shift shows (schema 2)."""

    model_config = ConfigDict(frozen=True)

    score: ScoreHistogram
    ood: ScoreHistogram | None = None


class FrameCost(BaseModel):
    """What one frame cost on the machine that exported the version (issue #27): a PNG at the input size decoded
    and prepared, both graphs and the served rejector at batch 1, one thread, as an inference worker spends it.
    The service estimates its capacity from it until it has measured frames of its own."""

    model_config = ConfigDict(frozen=True)

    frame_ms: float  # mean over `frames`
    p50_ms: float
    frames: int
    threads: int = 1
    cpu: str
    cores: int
    measured: str


class Manifest(BaseModel):
    """`manifest.json` beside a version's files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    name: str
    version: int = 0  # set by the registry at publish time
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: Literal["classify", "segment"]
    class_names: list[str]
    input: InputSpec = InputSpec()
    # The shared frame pipeline's FrameSpec as a dict: crop mode, size, interpolation.
    preprocessing: dict[str, Any]
    # Graph files by role: at least "controller" and "predictor" (ONNX file names in the version folder).
    graphs: dict[str, str]
    # Controller score threshold per target rejection rate ("0.05" -> threshold), calibrated on validation.
    thresholds: dict[str, float] = Field(default_factory=dict)
    score_histogram: ScoreHistogram | None = None
    # schema_version 2 (all optional: a v1 manifest serves raw scores with no out-of-scope check, and says so).
    calibration: Calibration | None = None
    ood: OodCalibration | None = None
    drift_reference: DriftReference | None = None
    # schema_version 3 (optional: without them the controller's score is served on the percentile scale).
    rejector: RejectorSpec | None = None
    certification: Certification | None = None
    # Optional (any schema): the per-frame cost measured at export.
    cost: FrameCost | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_config: dict[str, Any] = Field(default_factory=dict)
    code_revision: str = "unknown"
    quantization: str | None = None
    # Set when a retraining job published the version: a redelivered job finds it instead of publishing twice.
    job_id: str | None = None
    # The data set (an id in USQA_DATA_ROOT) it was trained on: its holdout is the version's reference set,
    # on which the promotion gate compares a challenger with it.
    dataset: str | None = None
    # sha256 of every file in the version folder except the manifest itself.
    files: dict[str, str] = Field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
