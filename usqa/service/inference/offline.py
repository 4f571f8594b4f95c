"""Offline scoring: a DICOM cine, a video or an image folder to a per-frame CSV and a plot of score over time.

Uses the same pipeline as the service (decode, `prepare_with_geometry`, the ONNX graphs, `score_outputs`)
and replays the live guidance, so the CSV says what a sonographer would have been told, frame by frame.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from usqa.contracts.protocol import Verdict
from usqa.service.frames import iter_source_frames
from usqa.service.inference.geometry import prepare_with_geometry, stack_pixels
from usqa.service.inference.guidance import GuidanceConfig, GuidanceTracker, guidance_config
from usqa.service.inference.model import LoadedModel, load_model
from usqa.service.inference.predictions import ClassPrediction, MaskPrediction
from usqa.service.inference.providers import plan_providers, plan_threads
from usqa.service.inference.scoring import ScoringOptions, score_outputs
from usqa.service.inference.verdict import (
    DEFAULT_LIMITS,
    FrameVerdict,
    FrozenCounter,
    SignalLimits,
    frozen_verdict,
    signal_limits,
)
from usqa.service.registry import open_registry
from usqa.service.registry.pass_line import pass_line
from usqa.service.settings import Settings

log = logging.getLogger(__name__)

CSV_NAME = "scores.csv"
PLOT_NAME = "scores.png"
CSV_COLUMNS = (
    "frame_id",
    "index",
    "score",
    "smoothed_score",
    "amenable",
    "threshold",
    "guidance",
    "verdict",
    "reason",
    "display_score",
    "ood_distance",
    "label",
    "probability",
    "mask_area_fraction",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
)
BATCH_FRAMES = 32


@dataclass(frozen=True)
class ScoredRow:
    frame_id: str
    index: int
    score: float
    smoothed_score: float | None
    amenable: bool
    threshold: float
    guidance: Verdict
    verdict: FrameVerdict
    display_score: float
    display_threshold: float
    ood_distance: float | None = None
    label: str = ""
    probability: float | None = None
    mask_area_fraction: float | None = None
    box: tuple[float, float, float, float] | None = None

    def cells(self) -> list[str]:
        box = self.box or ("", "", "", "")
        return [
            self.frame_id,
            str(self.index),
            f"{self.score:.6f}",
            "" if self.smoothed_score is None else f"{self.smoothed_score:.6f}",
            str(int(self.amenable)),
            f"{self.threshold:.6f}",
            self.guidance,
            self.verdict.verdict,
            self.verdict.reason,
            f"{self.display_score:.6f}",
            "" if self.ood_distance is None else f"{self.ood_distance:.6f}",
            self.label,
            "" if self.probability is None else f"{self.probability:.6f}",
            "" if self.mask_area_fraction is None else f"{self.mask_area_fraction:.6f}",
            *(str(v) for v in box),
        ]


@dataclass(frozen=True)
class OfflineReport:
    model: str
    version: int
    frames: int
    amenable_fraction: float
    csv_path: Path
    plot_path: Path
    verdicts: dict[str, int] = field(default_factory=dict)  # frames per verdict/reason, each frame by itself
    pass_line: str = ""  # what the version's pass line promises (usqa/service/registry/pass_line.py)


def open_model(settings: Settings, *, name: str, ref: str) -> LoadedModel:
    version = open_registry(settings).load(name, ref)
    threads = plan_threads(1, settings.intra_op_threads)  # one caller: all cores to its runs
    return load_model(
        version,
        target_rejection=settings.target_rejection,
        providers=plan_providers(settings.providers, settings.require_provider),
        intra_op_threads=threads.intra_op_threads,
        warmup_runs=1,
    )


def score_frames(
    model: LoadedModel,
    frames: Iterator[tuple[str, np.ndarray]],
    guidance: GuidanceConfig,
    limits: SignalLimits = DEFAULT_LIMITS,
) -> Iterator[ScoredRow]:
    """Each frame's verdict (frozen runs included) and the guidance a live stream would have shown."""
    tracker = GuidanceTracker(guidance)
    frozen = FrozenCounter(limits.frozen_frames)
    index = 0
    while chunk := list(itertools.islice(frames, BATCH_FRAMES)):
        prepared = [prepare_with_geometry(image, model.spec, limits) for _, image in chunk]
        outputs = model.run(stack_pixels(prepared))
        for (frame_id, _), scored in zip(
            chunk, score_outputs(model, outputs, prepared, ScoringOptions()), strict=True
        ):
            verdict = scored.verdict
            if frozen.add(scored.signal.digest):
                verdict = frozen_verdict(verdict)
            update = tracker.update(verdict, scored.display_score, scored.display_threshold)
            row = ScoredRow(
                frame_id=frame_id,
                index=index,
                score=scored.score,
                smoothed_score=update.smoothed_score,
                amenable=verdict.amenable,
                threshold=scored.threshold,
                guidance=update.state,
                verdict=verdict,
                display_score=scored.display_score,
                display_threshold=scored.display_threshold,
                ood_distance=scored.ood_distance,
            )
            p = scored.prediction
            if isinstance(p, ClassPrediction):
                row = _with(row, label=p.label, probability=p.probability)
            elif isinstance(p, MaskPrediction):
                box = p.bounding_box
                row = _with(
                    row,
                    mask_area_fraction=p.area_fraction,
                    box=None if box is None else (box.x, box.y, box.width, box.height),
                )
            yield row
            index += 1


def _with(row: ScoredRow, **changes: object) -> ScoredRow:
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def score_source(source: Path, out: Path, settings: Settings, *, name: str, ref: str) -> OfflineReport:
    """Score every frame of `source`; write OUT/scores.csv and OUT/scores.png."""
    model = open_model(settings, name=name, ref=ref)
    frames = iter_source_frames(
        source, max_pixels=settings.max_frame_pixels, max_frames=settings.max_frames_per_input
    )
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / CSV_NAME
    rows: list[ScoredRow] = []
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in score_frames(model, frames, guidance_config(settings), signal_limits(settings)):
            writer.writerow(row.cells())
            rows.append(row)
    plot_path = out / PLOT_NAME
    write_plot(
        plot_path,
        rows,
        title=f"{source.name}: {model.name} v{model.number}, threshold {model.scale.display_threshold:.3f} "
        f"({model.scale.scale} scale)",
    )
    amenable = sum(r.amenable for r in rows) / len(rows) if rows else 0.0
    verdicts = Counter(f"{r.verdict.verdict}/{r.verdict.reason}" for r in rows)
    return OfflineReport(
        model.name,
        model.number,
        len(rows),
        amenable,
        csv_path,
        plot_path,
        dict(sorted(verdicts.items())),
        pass_line(model.manifest).promise,
    )


# -- the plot, drawn with OpenCV (the runtime has no plotting library) ---------------------------------------

PLOT_SIZE = (1200, 420)  # width, height
MARGIN = (70, 30, 30, 70)  # left, top, right, bottom
GUIDANCE_BGR = {
    Verdict.GOOD: (113, 204, 46),
    Verdict.ADJUST: (18, 156, 243),
    Verdict.NO_SIGNAL: (141, 140, 127),
    Verdict.OUT_OF_SCOPE: (182, 89, 155),
}
INK = (40, 40, 40)
GRID = (225, 225, 225)


def write_plot(path: Path, rows: list[ScoredRow], *, title: str) -> None:
    width, height = PLOT_SIZE
    left, top, right, bottom = MARGIN
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(rows), 2)

    def x_of(i: float) -> int:
        return round(left + i * plot_w / (n - 1))

    def y_of(v: float) -> int:
        return round(top + (1 - v) * plot_h)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        cv2.line(canvas, (left, y_of(v)), (width - right, y_of(v)), GRID, 1)
        cv2.putText(canvas, f"{v:.2f}", (left - 52, y_of(v) + 5), font, 0.45, INK, 1, cv2.LINE_AA)
    for i in np.linspace(0, n - 1, min(n, 9)).round().astype(int):
        cv2.putText(canvas, str(i), (x_of(i) - 10, height - bottom + 20), font, 0.45, INK, 1, cv2.LINE_AA)
    # Guidance band under the axis: what the sonographer would have seen.
    for i, row in enumerate(rows):
        x0, x1 = x_of(i - 0.5) if i else left, x_of(i + 0.5) if i < n - 1 else width - right
        cv2.rectangle(
            canvas, (x0, height - bottom + 28), (x1, height - bottom + 38), GUIDANCE_BGR[row.guidance], -1
        )
    if rows:
        threshold = rows[-1].display_threshold
        for x in range(left, width - right, 12):
            cv2.line(
                canvas, (x, y_of(threshold)), (min(x + 6, width - right), y_of(threshold)), (60, 60, 200), 1
            )
        for i, row in enumerate(rows):
            color = (46, 160, 46) if row.amenable else (60, 60, 200)
            cv2.circle(canvas, (x_of(i), y_of(row.display_score)), 2, color, -1, cv2.LINE_AA)
        smooth = [
            (x_of(i), y_of(r.smoothed_score)) for i, r in enumerate(rows) if r.smoothed_score is not None
        ]
        if len(smooth) > 1:
            cv2.polylines(canvas, [np.array(smooth, dtype=np.int32)], False, (200, 120, 40), 2, cv2.LINE_AA)
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), INK, 1)
    cv2.putText(canvas, title, (left, top - 10), font, 0.5, INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "frame", (width - right - 40, height - 8), font, 0.45, INK, 1, cv2.LINE_AA)
    legend = (
        "dots: display score (green amenable, red not); blue: smoothed; dashed: threshold; band: guidance"
    )
    cv2.putText(canvas, legend, (left + 200, height - 8), font, 0.4, INK, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write {path}")
