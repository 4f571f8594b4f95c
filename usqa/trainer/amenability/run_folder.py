"""The run folder of `usqa train` and `usqa adapt`: every file name in it, and the one reader of each record.

    RUN/
      config.json       the resolved TrainConfig (usqa.trainer.recipe.config_files)
      plan.json         `usqa train`'s plan: fingerprint, shapes and their sources (usqa.trainer.recipe.planning)
      checkpoint.pt     the engine's last checkpoint, what `--resume` continues from
      metrics.jsonl     one line of logs per episode
      model.pt          the trained controller and predictor, each with the config that rebuilds it
      baseline.pt       the non-selective predictor (same network and budget, all frames)
      supervised.pt     the supervised stage's predictor, which both stages above start from, and its history
      data.json         the data set it was trained on, so `usqa export` finds real frames for its checks
      verdict.json      the run's acceptance (usqa.trainer.amenability.acceptance)
      adapt.json        an adaptation's record (usqa.trainer.adaptation.adapt)
      eval/report.json  `usqa evaluate`'s report, with curves.png and contingency.png beside it

`usqa evaluate --out` may write its report into any folder under the run; the run's evaluation is the first
report.json under it (in path order) that holds one, so export's metrics, its kappa gate and the model card
read the same report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
PLAN_FILE = "plan.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.pt"
BASELINE_FILE = "baseline.pt"
SUPERVISED_FILE = "supervised.pt"
DATA_RECORD_FILE = "data.json"
VERDICT_FILE = "verdict.json"
ADAPT_FILE = "adapt.json"
EVAL_DIR = "eval"
REPORT_FILE = "report.json"
CURVES_PNG = "curves.png"
CONTINGENCY_PNG = "contingency.png"
# The key every evaluation report has (evaluate.py documents the schema); other report.json files lack it.
EVALUATION_KEY = "kappa"


def write_json(data: Mapping[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_plan(plan: Mapping[str, Any], run_dir: Path | str) -> Path:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return write_json(plan, Path(run_dir) / PLAN_FILE)


def read_plan(run_dir: Path | str) -> dict[str, Any] | None:
    """A run's plan.json (a `PlanRecord` as a dict), or None for a run trained without a plan."""
    path = Path(run_dir) / PLAN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_verdict(verdict: Mapping[str, Any], run_dir: Path | str) -> Path:
    return write_json(verdict, Path(run_dir) / VERDICT_FILE)


def read_verdict(run_dir: Path | str) -> dict[str, Any] | None:
    """A run's verdict.json, or None for a run from before verdicts were written."""
    path = Path(run_dir) / VERDICT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_report(report: Mapping[str, Any], out_dir: Path | str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_json(report, out / REPORT_FILE)


def evaluation_report(run_dir: Path | str) -> dict[str, Any] | None:
    """The run's evaluation: the first report.json under the run folder that holds one, or None."""
    for candidate in sorted(Path(run_dir).glob(f"**/{REPORT_FILE}")):
        report = json.loads(candidate.read_text(encoding="utf-8"))
        if isinstance(report, dict) and EVALUATION_KEY in report:
            return report
    return None


def record_data_dir(run_dir: Path, data_dir: Path) -> None:
    """Remember which data set a run was trained on, so `usqa export` finds real frames for its checks."""
    (run_dir / DATA_RECORD_FILE).write_text(json.dumps({"data_dir": str(Path(data_dir).resolve())}) + "\n")


def recorded_data_dir(run_dir: Path) -> Path | None:
    path = run_dir / DATA_RECORD_FILE
    return Path(json.loads(path.read_text())["data_dir"]) if path.is_file() else None
