"""The run folder of `usqa heat` and `usqa finetune`: every file name in it, and the reader of its metrics.

    RUN/
      config.json    the resolved HeatConfig or FinetuneConfig (usqa.trainer.recipe.config_files)
      checkpoint.pt  everything `--resume` needs (networks, policy state, optimisers, generators)
      log.jsonl      the engine's log lines
      backbone.pt    the heated or fine-tuned backbone (usqa.trainer.heating.backbone_io), what `--backbone` reads
      metrics.json   holdout metrics: {"steps", "class_names", "metrics"}

Its own names, not the amenability run's: a heating run holds no controller, verdict or evaluation report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.jsonl"
BACKBONE_FILE = "backbone.pt"
METRICS_FILE = "metrics.json"


def write_metrics(summary: Mapping[str, Any], out: Path) -> Path:
    path = out / METRICS_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def read_metrics(out: Path) -> dict[str, Any]:
    """The run's metrics.json (steps, class names and the holdout metrics)."""
    data: dict[str, Any] = json.loads((out / METRICS_FILE).read_text(encoding="utf-8"))
    return data
