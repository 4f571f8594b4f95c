"""The adaptation branch of a retraining job: a spec with `adapt_from` adapts that version (usqa.trainer.adaptation.adapt).

The published source is read from the job's registry; the run folder it writes is exported and gated like a
trained one. A redelivered job whose adaptation finished reuses it (adaptation has no checkpoint to resume).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from usqa.contracts.adaptation import AdaptMode
from usqa.contracts.training import apply_overrides
from usqa.service.jobs.spec import JobSpec
from usqa.service.registry import ModelRegistry
from usqa.trainer.adaptation.adapt import AdaptOptions, adapt
from usqa.trainer.amenability.run_folder import ADAPT_FILE, MODEL_FILE
from usqa.trainer.engine.base import Callback

DEFAULT_MODE: AdaptMode = "finetune"
DEFAULT_STEPS = 100


def adapt_options(spec: JobSpec) -> AdaptOptions:
    """The spec's adaptation settings (fields checked by `usqa.service.jobs.spec.check_adaptation`)."""
    assert spec.labels is not None
    options = AdaptOptions(
        mode=spec.adapt_mode or DEFAULT_MODE, labels=spec.labels, steps=DEFAULT_STEPS, task=spec.task
    )
    # Only seed, steps, episodes and device: check_adaptation refuses any other override.
    return apply_overrides(options, spec.overrides)


def run_adaptation(
    spec: JobSpec,
    registry: ModelRegistry,
    data_dir: Path,
    run_dir: Path,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Adapt `spec.adapt_from` into `run_dir` (raises `AdaptError`); returns the adaptation's summary."""
    assert spec.adapt_from is not None
    record = run_dir / ADAPT_FILE
    if not ((run_dir / MODEL_FILE).is_file() and record.is_file()):
        adapt(spec.adapt_from, registry, data_dir, run_dir, adapt_options(spec), callbacks)
    return summary(run_dir)


def summary(run_dir: Path) -> dict[str, Any]:
    """What the job's report says about the adaptation (adapt.json without the frame list)."""
    record = json.loads((run_dir / ADAPT_FILE).read_text())
    return {k: v for k, v in record.items() if k != "labelled_frames"}
