"""The model card export publishes with each version: `card.json` and `card.md` (usqa/service/registry/card.py).

Export knows more than a manifest: the run's evaluation report (`usqa evaluate` writes report.json into the
run folder), the data set's splits and, for simulated data, how it was generated. Paths are shown relative to
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
from usqa.service.registry.card import CARD_JSON, CARD_MARKDOWN, TrainingData, build_card, regenerate_commands
from usqa.service.registry.card_render import card_markdown
from usqa.service.simulator.dataset import SETTINGS_FILE
from usqa.trainer.amenability.evaluate import REPORT_FILE

log = logging.getLogger(__name__)


def shown(path: Path) -> str:
    """`path` relative to the working directory when under it, else its folder name alone."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def evaluation_report(run_dir: Path) -> dict[str, Any] | None:
    """The run's report.json (the first one under the run folder, as the manifest's metrics take it)."""
    for candidate in sorted(run_dir.glob(f"**/{REPORT_FILE}")):
        return dict(json.loads(candidate.read_text()))
    return None


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
        source="export",
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
