"""The model card: what a version is for, what it was trained and measured on, and how to make it again.

Export writes it into the version folder as `card.json` (what the API serves) and `card.md` (for a person
reading the registry folder). Both are published files like the graphs: listed in the manifest's `files`, so
the registry's sha256 checks cover them and a publish stays one atomic rename. A version published without a
card (the shipped v1) gets one built from its manifest when asked, marked `source: "manifest"` with
`FROM_MANIFEST_NOTE`. The card never names a path of the machine that exported it: folder names only.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from usqa.contracts.graphs import MASK_OUTPUT, PROBABILITIES_OUTPUT, SCORE_OUTPUT
from usqa.service.registry.manifest import InputSpec, Manifest, ScoreHistogram, sha256_file
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
NO_REPORT_NOTE = "exported without an evaluation report (run `usqa evaluate` into the run folder first)"
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
    training_data: TrainingData | None = None
    regenerate: list[str] = []
    code_revision: str = "unknown"
    quantization: str | None = None


def _finite(value: Any) -> float | None:
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


def evaluation_of(report: dict[str, Any]) -> Evaluation:
    """The card's view of a report.json (usqa/trainer/amenability/evaluate.py documents its schema)."""
    ttest = report.get("ttest")
    return Evaluation(
        metric=str(report.get("metric", "metric")),
        frames=report.get("frames"),
        subjects=report.get("subjects"),
        operating_point=report.get("operating_point"),
        rejection_ratios=list(report.get("rejection_ratios", [])),
        bootstrap_resamples=report.get("bootstrap_resamples"),
        curves={k: RejectionCurve.model_validate(v) for k, v in report.get("curves", {}).items()},
        non_amenable_fraction=_finite(report.get("non_amenable_fraction")),
        kappa_at_prevalence={k: _finite(v) for k, v in report.get("kappa_at_prevalence", {}).items()},
        ttest={k: float(v) for k, v in ttest.items() if _finite(v) is not None} if ttest else None,
    )


def out_of_scope_of(manifest: Manifest) -> OutOfScopeCheck | None:
    # The `ood` section is newer than the card: read what is there without depending on its class.
    ood = manifest.model_dump().get("ood")
    if not isinstance(ood, dict):
        return None
    return OutOfScopeCheck(
        method=ood.get("method"),
        threshold=_finite(ood.get("threshold")),
        false_alarm_rate=_finite(ood.get("false_alarm_rate")),
        validation_frames=ood.get("validation_frames"),
    )


def regenerate_commands(
    manifest: Manifest,
    *,
    run: str = "RUN",
    data: str = "DATA",
    registry: str = "models",
    simulate: dict[str, Any] | None = None,
) -> list[str]:
    """The commands that retrain and republish this version from its recorded training configuration."""
    config = manifest.training_config
    commands: list[str] = []
    if run == "RUN":
        commands.append("# RUN: a new run folder; DATA: the labelled data-set folder it was trained on")
    if simulate:
        commands.append(
            f"usqa simulate --out {data} --frames {simulate.get('frames')} --subjects "
            f"{simulate.get('subjects')} --seed {simulate.get('seed')} --size {simulate.get('size')} "
            f"--preset {simulate.get('preset')} --degraded-fraction {simulate.get('degraded_fraction')}"
        )
    if config:
        train = [
            f"usqa train --data {data} --task {config.get('task', manifest.task)}",
            f"--reward {config.get('reward', {}).get('kind', 'weighted')} --algo {config.get('algo', 'reinforce')}",
            f"--config {config.get('name', 'default')} --seed {config.get('seed', 0)}",
            f"--episodes {config.get('episodes')} --out {run}",
        ]
        if config.get("device", "cpu") != "cpu":
            train.append(f"--device {config['device']}")
        if config.get("backbone_checkpoint"):
            train.append(f"--backbone {Path(str(config['backbone_checkpoint'])).name}")
        if config.get("train_baseline") is False:
            train.append("--no-baseline")
        commands.append(" ".join(train))
    commands.append(f"usqa evaluate --run {run} --data {data} --out {run}/eval")
    export = f"usqa export --run {run} --data {data} --registry {registry} --name {manifest.name}"
    export += f" --class-names {','.join(manifest.class_names)}"
    if manifest.quantization:
        export += f" --quantize {manifest.quantization}"
    commands.append(export)
    return commands


def build_card(
    manifest: Manifest,
    *,
    source: Literal["export", "manifest"] = "manifest",
    report: dict[str, Any] | None = None,
    training_data: TrainingData | None = None,
    regenerate: list[str] | None = None,
) -> ModelCard:
    """A card from what a manifest says, plus the evaluation report and data summary when export has them."""
    recorded = manifest.metrics.get("evaluation", {}) if isinstance(manifest.metrics, dict) else {}
    kappa = (report or {}).get("kappa") or recorded.get("kappa") or {}
    config = manifest.training_config
    if training_data is None and (config or manifest.dataset):
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
        source=source,
        note=FROM_MANIFEST_NOTE if source == "manifest" else None if report is not None else NO_REPORT_NOTE,
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
        kappa={k: _finite(v) for k, v in kappa.items()},
        score_spread=score_spread(manifest.score_histogram),
        evaluation=evaluation_of(report) if report is not None else None,
        out_of_scope=out_of_scope_of(manifest),
        training_data=training_data,
        regenerate=regenerate if regenerate is not None else regenerate_commands(manifest),
        code_revision=manifest.code_revision,
        quantization=manifest.quantization,
    )


def read_card(registry: ModelRegistry, name: str, ref: str | int) -> ModelCard:
    """The card of version `ref` (a number, `latest` or an alias): its published one, checked, else built."""
    version = registry.resolve(name, ref)
    manifest = registry.manifest(name, version)
    if CARD_JSON not in manifest.files:
        return build_card(manifest)
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
