"""The promotion gate: a challenger becomes champion only if it is not worse than the champion.

Both versions are scored as the service would serve them (onnxruntime, their own frame spec and calibrated
threshold at the service's target rejection) on each evaluation set: the new data set's holdout split and the
champion's reference set (the holdout of the data set it was trained on, when that data set is in the data
root). The compared figure is the task metric (accuracy, or mean Dice) on the frames each version would call
amenable. The gate passes when, on every set both could be scored on, the challenger is at most `margin` below.

Before any comparison, a challenger whose recorded verdict failed (usqa.trainer.amenability.acceptance, in its manifest's metrics: a
predictor no better than the trivial one, a controller with no spread or kappa <= 0) is refused unless `force`,
even when there is no champion yet; versions published before verdicts existed record none and are not refused.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from usqa.service.datasets import LabelledDataset, load_dataset
from usqa.service.datasets.labels import FrameArrays
from usqa.service.datasets.uploads import DatasetStore, UnknownDataset
from usqa.service.frames import FrameSpec
from usqa.service.inference.evaluation import METRIC_NAME, evaluate
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.offline import open_model
from usqa.service.registry import CHAMPION, ModelRegistry, RegistryError
from usqa.service.settings import Settings
from usqa.trainer.amenability.acceptance import refusal

log = logging.getLogger(__name__)

EVAL_SPLIT = "holdout"


@dataclass(frozen=True)
class SetComparison:
    """One evaluation set: each version's selective metric (None: that version cannot be scored on it)."""

    name: str
    dataset: str
    frames: int
    challenger: float | None
    champion: float | None
    challenger_kept: float | None
    champion_kept: float | None
    passed: bool | None  # None: not comparable on this set
    note: str = ""


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    metric: str
    margin: float
    target_rejection: float
    challenger_version: int
    champion_version: int | None
    sets: list[SetComparison] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_on_set(
    model: LoadedModel,
    dataset: LabelledDataset,
    split: str = EVAL_SPLIT,
    prepared: dict[FrameSpec, FrameArrays] | None = None,
) -> tuple[float, float, int] | str:
    """(metric on the frames the model keeps, kept fraction, frames), or why it cannot be scored here.

    `prepared` keeps the split's frames per frame spec, so two versions of one size decode them once.
    """
    if model.task == "segment" and not dataset.has_masks:
        return "the data set has no masks"
    prepared = {} if prepared is None else prepared
    if model.spec not in prepared:
        prepared[model.spec] = dataset.arrays(split, model.spec)
    arrays = prepared[model.spec]
    if len(arrays.images) == 0:
        return f"the data set has no {split} frames"
    if model.task == "classify" and int(arrays.labels.max()) >= len(model.class_names):
        return f"labels up to {int(arrays.labels.max())} but the model has {len(model.class_names)} classes"
    kept = evaluate(model, arrays.images, arrays.labels, arrays.masks).selective(threshold=model.threshold)
    return kept.value, kept.kept, len(arrays.images)


def _compare(
    name: str,
    dataset_id: str,
    dataset: LabelledDataset,
    challenger: LoadedModel,
    champion: LoadedModel | None,
    margin: float,
) -> SetComparison:
    prepared: dict[FrameSpec, FrameArrays] = {}
    new = score_on_set(challenger, dataset, prepared=prepared)
    old = score_on_set(champion, dataset, prepared=prepared) if champion is not None else "no champion"
    frames = new[2] if isinstance(new, tuple) else (old[2] if isinstance(old, tuple) else 0)
    if isinstance(new, str) or isinstance(old, str):
        note = "; ".join(
            f"{who}: {why}" for who, why in (("challenger", new), ("champion", old)) if isinstance(why, str)
        )
        return SetComparison(
            name,
            dataset_id,
            frames,
            None if isinstance(new, str) else new[0],
            None if isinstance(old, str) else old[0],
            None if isinstance(new, str) else new[1],
            None if isinstance(old, str) else old[1],
            None,
            note,
        )
    return SetComparison(name, dataset_id, frames, new[0], old[0], new[1], old[1], new[0] >= old[0] - margin)


def decide(
    settings: Settings,
    registry: ModelRegistry,
    name: str,
    challenger_version: int,
    new_dataset: str,
    *,
    margin: float | None = None,
    force: bool = False,
    job: bool = False,
) -> GateDecision:
    """Compare `challenger_version` with the current champion of `name` (see the module docstring)."""
    margin = settings.promotion_margin if margin is None else margin
    store = DatasetStore(
        settings.data_root,
        max_unpacked_bytes=settings.max_unpacked_bytes,
        max_members=settings.max_archive_members,
    )
    challenger = open_model(settings, name=name, ref=str(challenger_version))
    metric = METRIC_NAME[challenger.task]
    try:
        champion: LoadedModel | None = open_model(settings, name=name, ref=CHAMPION)
    except RegistryError:
        champion = None

    def verdict(passed: bool, reason: str, sets: list[SetComparison] | None = None) -> GateDecision:
        return GateDecision(
            passed=passed,
            reason=reason,
            metric=metric,
            margin=margin,
            target_rejection=settings.target_rejection,
            challenger_version=challenger_version,
            champion_version=None if champion is None else champion.number,
            sets=sets or [],
        )

    if champion is not None and champion.number == challenger_version:
        return verdict(True, "the challenger is already champion")
    refused = refusal(
        challenger.manifest.metrics.get("verdict", {}), f"promotion of v{challenger_version}", job
    )
    if refused is not None and not force:
        return verdict(False, refused)
    if champion is None:
        return verdict(True, f"{name} has no champion yet: the first version becomes champion")
    if champion.task != challenger.task:
        return verdict(
            False, f"the champion (v{champion.number}) does another task ({champion.task}); promote by hand"
        )
    sets = [
        _compare(
            "new data holdout",
            new_dataset,
            load_dataset(store.path(new_dataset)),
            challenger,
            champion,
            margin,
        )
    ]
    reference = champion.manifest.dataset
    if reference and reference != new_dataset:
        try:
            reference_data = load_dataset(store.path(reference))
        except UnknownDataset:
            log.warning(
                "champion v%d: reference data set %s is not in the data root", champion.number, reference
            )
        else:
            sets.append(
                _compare(
                    "champion reference holdout", reference, reference_data, challenger, champion, margin
                )
            )
    elif not reference:
        log.info(
            "champion v%d records no reference data set; gating on the new holdout only", champion.number
        )
    compared = [s for s in sets if s.passed is not None]
    if not compared:
        return verdict(False, "no evaluation set could score both versions; promote by hand", sets)
    failed = [s for s in compared if not s.passed]
    if failed:
        worst = failed[0]
        return verdict(
            False,
            f"on the {worst.name} ({worst.dataset}) the challenger's {metric} {worst.challenger:.4f} is more "
            f"than {margin} below the champion's {worst.champion:.4f}",
            sets,
        )
    summary = ", ".join(f"{s.name} {s.challenger:.4f} vs {s.champion:.4f}" for s in compared)
    return verdict(True, f"not worse than champion v{champion.number} within {margin}: {summary}", sets)
