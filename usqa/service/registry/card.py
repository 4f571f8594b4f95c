"""The model card: what a version is for, what it was trained and measured on, and how to make it again.

The runtime reads and renders cards; it never builds one from a run. The trainer's export builds it
(usqa/trainer/release/card_builder.py) and writes it into the version folder as `card.json` (what the API
serves) and `card.md` (for a person reading the registry folder). Both are published files like the graphs:
listed in the manifest's `files`, so the registry's sha256 checks cover them and a publish stays one atomic
rename. A version published without a card (the shipped v1) gets the view its manifest alone gives
(`manifest_card`), marked `source: "manifest"` with `FROM_MANIFEST_NOTE`: no evaluation report and no
regeneration commands. The card never names a path of the machine that exported it: folder names only.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from usqa.contracts.graphs import MASK_OUTPUT, PROBABILITIES_OUTPUT, SCORE_OUTPUT
from usqa.service.registry.manifest import FrameCost, InputSpec, Manifest, ScoreHistogram, sha256_file
from usqa.service.registry.pass_line import pass_line
from usqa.service.registry.store import MSG_MISSING_FILE, MSG_TAMPERED, IntegrityError, ModelRegistry

CARD_JSON = "card.json"
CARD_MARKDOWN = "card.md"
CARD_FILES = (CARD_JSON, CARD_MARKDOWN)

INTENDED_USE = (
    "Research and teaching only. Scores how amenable each ultrasound frame is to the model's task "
    "(the task-amenability controller of Saeed et al.) to give live acquisition feedback in experiments. "
    "It is not a medical device, has no regulatory clearance and must not be used for diagnosis, "
    "treatment or any clinical decision."
)
OUT_OF_SCOPE_USES = (
    "Clinical use of any kind; anatomy, probes or modalities other than those it was trained on; "
    "frames that are not B-mode ultrasound; judging image quality in general rather than for this task."
)
FROM_MANIFEST_NOTE = "generated from the manifest; no evaluation report"
MSG_BAD_CARD = "model {name!r} version {version}: card.json is unreadable: {reason}"
SPREAD_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class ScoreSpread(BaseModel):
    """Controller scores on the validation split, summarised from the manifest's histogram."""

    model_config = ConfigDict(frozen=True)

    frames: int
    mean: float
    std: float
    bin_width: float
    # "0.05" -> the histogram bin (low, high) holding that quantile of the validation scores.
    quantiles: dict[str, tuple[float, float]]
    histogram: ScoreHistogram


class RejectionCurve(BaseModel):
    model_config = ConfigDict(frozen=True)

    point: list[float]
    mean: list[float]
    std: list[float]


class Evaluation(BaseModel):
    """The holdout evaluation (`usqa evaluate`'s report.json), as far as a reader of the card needs it."""

    model_config = ConfigDict(frozen=True)

    metric: str
    frames: int | None = None
    subjects: int | None = None
    operating_point: float | None = None
    rejection_ratios: list[float]
    bootstrap_resamples: int | None = None
    # The task metric on the frames kept after rejecting the lowest-scored fraction, per rejection method.
    curves: dict[str, RejectionCurve]
    non_amenable_fraction: float | None = None
    kappa_at_prevalence: dict[str, float | None] = {}
    ttest: dict[str, float] | None = None


class TrainingData(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset: str | None = None  # the data-set folder's name (or its id in USQA_DATA_ROOT)
    frames_per_split: dict[str, int] = {}
    subjects_per_split: dict[str, int] = {}
    preset: str | None = None
    data_seed: int | None = None
    training_seed: int | None = None
    training_preset: str | None = None
    algo: str | None = None
    reward: str | None = None


class OutOfScopeCheck(BaseModel):
    """The out-of-distribution check, when the manifest has one (its `ood` section)."""

    model_config = ConfigDict(frozen=True)

    method: str | None = None
    threshold: float | None = None
    # The share of in-scope validation frames the check flags as out of scope.
    false_alarm_rate: float | None = None
    validation_frames: int | None = None


class PassLineCard(BaseModel):
    """The served rejector and what its pass line promises (issue #25), with the display score's calibration."""

    model_config = ConfigDict(frozen=True)

    rejector: str
    reason: str = ""
    validation_aurc: dict[str, float] = {}
    certified: bool
    promise: str
    certification: dict[str, Any] | None = None
    display_scale: str | None = None
    display_ece: float | None = None
    reliability: list[dict[str, float]] = []


def pass_line_of(manifest: Manifest) -> PassLineCard:
    line = pass_line(manifest)
    spec, calibration = manifest.rejector, manifest.calibration
    return PassLineCard(
        rejector=line.rejector,
        reason="" if spec is None else spec.reason,
        validation_aurc={} if spec is None else dict(spec.validation_aurc),
        certified=line.certified,
        promise=line.promise,
        certification=None if manifest.certification is None else manifest.certification.model_dump(),
        display_scale=None if calibration is None else calibration.display_scale,
        display_ece=None if calibration is None else finite(calibration.correct_ece),
        reliability=[] if calibration is None or calibration.reliability is None else calibration.reliability,
    )


class ModelCard(BaseModel):
    """`card.json`: the model card of one version (public API: `GET /models/{name}/{version}/card`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    name: str
    version: int = 0  # the registry assigns it at publish; filled in when the card is read
    source: Literal["export", "manifest"]
    note: str | None = None
    created: str
    intended_use: str = INTENDED_USE
    out_of_scope_uses: str = OUT_OF_SCOPE_USES
    task: str
    class_names: list[str]
    input: InputSpec
    outputs: dict[str, str]
    preprocessing: dict[str, Any]
    thresholds: dict[str, float]
    # Cohen's kappa between the rejection and the amenability labels at the operating point, per method.
    kappa: dict[str, float | None] = {}
    score_spread: ScoreSpread | None = None
    evaluation: Evaluation | None = None
    out_of_scope: OutOfScopeCheck | None = None
    pass_line: PassLineCard | None = None
    training_data: TrainingData | None = None
    regenerate: list[str] = []
    code_revision: str = "unknown"
    quantization: str | None = None
    cost: FrameCost | None = None  # the per-frame cost measured at export (issue #27)


def finite(value: Any) -> float | None:
    """A number, or None for what was not measured (NaN, infinity, missing)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def score_spread(histogram: ScoreHistogram | None) -> ScoreSpread | None:
    """Mean and spread from the bin centres; each quantile as the bin that holds it (no finer than a bin)."""
    if histogram is None or sum(histogram.counts) == 0:
        return None
    edges, counts = histogram.edges, histogram.counts
    total = sum(counts)
    centres = [(lo + hi) / 2 for lo, hi in itertools.pairwise(edges)]
    mean = sum(c * n for c, n in zip(centres, counts, strict=False)) / total
    var = sum(n * (c - mean) ** 2 for c, n in zip(centres, counts, strict=False)) / total
    quantiles: dict[str, tuple[float, float]] = {}
    for q in SPREAD_QUANTILES:
        seen = 0
        for lo, hi, n in zip(edges, edges[1:], counts, strict=False):
            seen += n
            if n and seen >= q * total:
                quantiles[f"{q:.2f}"] = (lo, hi)
                break
    return ScoreSpread(
        frames=total,
        mean=round(mean, 4),
        std=round(math.sqrt(var), 4),
        bin_width=round(max(hi - lo for lo, hi in itertools.pairwise(edges)), 6),
        quantiles=quantiles,
        histogram=histogram,
    )


def out_of_scope_of(manifest: Manifest) -> OutOfScopeCheck | None:
    # The `ood` section is newer than the card: read what is there without depending on its class.
    ood = manifest.model_dump().get("ood")
    if not isinstance(ood, dict):
        return None
    return OutOfScopeCheck(
        method=ood.get("method"),
        threshold=finite(ood.get("threshold")),
        false_alarm_rate=finite(ood.get("false_alarm_rate")),
        validation_frames=ood.get("validation_frames"),
    )


def manifest_card(manifest: Manifest) -> ModelCard:
    """What a manifest alone says as a card: its contract, thresholds, recorded kappa and score spread."""
    recorded = manifest.metrics.get("evaluation", {}) if isinstance(manifest.metrics, dict) else {}
    config = manifest.training_config
    training_data = None
    if config or manifest.dataset:
        training_data = TrainingData(
            dataset=manifest.dataset,
            training_seed=config.get("seed"),
            training_preset=config.get("name"),
            algo=config.get("algo"),
            reward=config.get("reward", {}).get("kind"),
        )
    predictor_output = PROBABILITIES_OUTPUT if manifest.task == "classify" else MASK_OUTPUT
    return ModelCard(
        name=manifest.name,
        version=manifest.version,
        source="manifest",
        note=FROM_MANIFEST_NOTE,
        created=manifest.created,
        task=manifest.task,
        class_names=list(manifest.class_names),
        input=manifest.input,
        outputs={
            "controller": f"{SCORE_OUTPUT}: float32 [N] in [0, 1] (task amenability)",
            "predictor": f"{predictor_output}: float32 "
            + (
                "[N, C] class probabilities"
                if manifest.task == "classify"
                else "[N, 1, S, S] mask probability"
            ),
        },
        preprocessing=dict(manifest.preprocessing),
        thresholds=dict(manifest.thresholds),
        kappa={k: finite(v) for k, v in (recorded.get("kappa") or {}).items()},
        score_spread=score_spread(manifest.score_histogram),
        out_of_scope=out_of_scope_of(manifest),
        pass_line=pass_line_of(manifest),
        training_data=training_data,
        code_revision=manifest.code_revision,
        quantization=manifest.quantization,
        cost=manifest.cost,
    )


def read_card(registry: ModelRegistry, name: str, ref: str | int) -> ModelCard:
    """The card of version `ref` (a number, `latest` or an alias): its published one, checked, else built."""
    version = registry.resolve(name, ref)
    manifest = registry.manifest(name, version)
    if CARD_JSON not in manifest.files:
        return manifest_card(manifest)
    path = registry.root / name / str(version) / CARD_JSON
    if not path.is_file():
        raise IntegrityError(MSG_MISSING_FILE.format(name=name, version=version, file=CARD_JSON))
    if sha256_file(path) != manifest.files[CARD_JSON]:
        raise IntegrityError(MSG_TAMPERED.format(name=name, version=version, file=CARD_JSON))
    try:
        card = ModelCard.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise IntegrityError(MSG_BAD_CARD.format(name=name, version=version, reason=exc)) from exc
    return card.model_copy(update={"name": name, "version": version})
