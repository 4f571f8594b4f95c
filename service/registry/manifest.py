"""The model manifest: everything a runtime needs to serve a version, and to check it is the one published."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.graphs import INPUT_DTYPE, INPUT_NAME

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
