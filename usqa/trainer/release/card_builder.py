"""The model card export publishes with each version: `card.json` and `card.md` (schema, reader and renderer in
usqa/service/registry/card.py and card_render.py; the runtime never builds one).

Export knows more than a manifest: the run's evaluation report (`usqa evaluate`'s report.json under the run
folder, usqa.trainer.amenability.run_folder), the data set's splits and, for simulated data, how it was generated. Paths are shown relative to
the working directory, or as bare folder names: a card is served to clients, and the exporting machine's
folders are nobody's business.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from usqa.service.datasets import load_dataset
from usqa.service.registry import Manifest
from usqa.service.registry.card import (
    CARD_JSON,
    CARD_MARKDOWN,
    Evaluation,
    ModelCard,
    RejectionCurve,
    TrainingData,
    finite,
    manifest_card,
)
from usqa.service.registry.card_render import card_markdown
from usqa.service.simulator.dataset import SETTINGS_FILE
from usqa.trainer.amenability.run_folder import EVAL_DIR, REPORT_FILE, evaluation_report

log = logging.getLogger(__name__)

NO_REPORT_NOTE = "exported without an evaluation report (run `usqa evaluate` into the run folder first)"


def shown(path: Path) -> str:
    """`path` relative to the working directory when under it, else its folder name alone."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def simulation_settings(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / SETTINGS_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else None


def training_data(manifest: Manifest, data_dir: Path, simulation: dict[str, Any] | None) -> TrainingData:
    counts = load_dataset(data_dir, check_images=False).counts()
    config = manifest.training_config
    return TrainingData(
        dataset=manifest.dataset or data_dir.resolve().name,
        frames_per_split={split: c["frames"] for split, c in counts.items()},
        subjects_per_split={split: c["subjects"] for split, c in counts.items()},
        preset=None if simulation is None else simulation.get("preset"),
        data_seed=None if simulation is None else simulation.get("seed"),
        training_seed=config.get("seed"),
        training_preset=config.get("name"),
        algo=config.get("algo"),
        reward=config.get("reward", {}).get("kind"),
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
        non_amenable_fraction=finite(report.get("non_amenable_fraction")),
        kappa_at_prevalence={k: finite(v) for k, v in report.get("kappa_at_prevalence", {}).items()},
        ttest={k: float(v) for k, v in ttest.items() if finite(v) is not None} if ttest else None,
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
            + (f" --mix {simulate['mix']}" if simulate.get("mix") else "")
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
    commands.append(f"usqa evaluate --run {run} --data {data} --out {run}/{EVAL_DIR}")
    export = f"usqa export --run {run} --data {data} --registry {registry} --name {manifest.name}"
    export += f" --class-names {','.join(manifest.class_names)}"
    if manifest.quantization:
        export += f" --quantize {manifest.quantization}"
    commands.append(export)
    return commands


def build_card(
    manifest: Manifest,
    *,
    report: dict[str, Any] | None = None,
    training_data: TrainingData | None = None,
    regenerate: list[str] | None = None,
) -> ModelCard:
    """The exported card: what the manifest says, plus the evaluation report and data summary export has."""
    card = manifest_card(manifest)
    update: dict[str, Any] = {
        "source": "export",
        "note": None if report is not None else NO_REPORT_NOTE,
        "regenerate": regenerate if regenerate is not None else regenerate_commands(manifest),
    }
    if training_data is not None:
        update["training_data"] = training_data
    if report is not None:
        update["evaluation"] = evaluation_of(report)
        if report.get("kappa"):
            update["kappa"] = {k: finite(v) for k, v in report["kappa"].items()}
    return ModelCard.model_validate({**dict(card), **update})


def write_model_card(
    out: Path, manifest: Manifest, *, run_dir: Path, data_dir: Path, registry: Path
) -> dict[str, Path]:
    """Write the card into `out`; the files (name in the version folder -> path) to publish with the graphs."""
    report = evaluation_report(run_dir)
    if report is None:
        log.warning("no %s under %s: the model card will have no rejection curves", REPORT_FILE, run_dir)
    simulation = simulation_settings(data_dir)
    card = build_card(
        manifest,
        report=report,
        training_data=training_data(manifest, data_dir, simulation),
        regenerate=regenerate_commands(
            manifest, run=shown(run_dir), data=shown(data_dir), registry=shown(registry), simulate=simulation
        ),
    )
    files = {CARD_JSON: out / CARD_JSON, CARD_MARKDOWN: out / CARD_MARKDOWN}
    files[CARD_JSON].write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    files[CARD_MARKDOWN].write_text(card_markdown(card), encoding="utf-8")
    return files
