"""A published version loaded as the service loads it, for tests that score frames without a server."""

from __future__ import annotations

from usqa.service.inference.model import LoadedModel, load_model
from usqa.service.inference.providers import plan_providers
from usqa.service.registry import ModelVersion


def cpu_model(version: ModelVersion) -> LoadedModel:
    """A published version loaded as the service would, on one CPU thread, at the 5 % operating point."""
    return load_model(
        version,
        target_rejection=0.05,
        providers=plan_providers(("CPUExecutionProvider",)),
        intra_op_threads=1,
        warmup_runs=0,
    )
