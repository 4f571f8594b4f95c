"""Which onnxruntime execution provider serves, and with how many threads: chosen once, said out loud.

The preference order comes from settings (TensorRT, then CUDA, then CPU by default) and is intersected with
what this onnxruntime build offers. After a session is created the provider it actually runs on is read
back from it, so a GPU provider that failed to initialise shows up as a fallback rather than going unnoticed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"

MSG_REQUIRED_PROVIDER_MISSING = "execution provider {provider!r} is required (USQA_REQUIRE_PROVIDER) but this onnxruntime offers only {available}"
MSG_REQUIRED_PROVIDER_NOT_USED = (
    "execution provider {provider!r} is required (USQA_REQUIRE_PROVIDER) but the session runs on {actual!r}"
)
MSG_NO_PROVIDER = (
    "none of the configured execution providers {requested} is available (available: {available})"
)


class ProviderError(RuntimeError):
    """The configured execution provider cannot serve: a start-up failure, never a silent fallback."""


@dataclass(frozen=True)
class ProviderPlan:
    """What was asked for, what exists, and the order handed to onnxruntime."""

    requested: tuple[str, ...]
    available: tuple[str, ...]
    order: tuple[str, ...]
    required: str | None

    @property
    def preferred(self) -> str:
        return self.order[0]


def plan_providers(
    requested: Sequence[str], required: str | None = None, available: Sequence[str] | None = None
) -> ProviderPlan:
    """The requested providers this build offers, in preference order; CPU stays last as the floor."""
    offered = tuple(available if available is not None else ort.get_available_providers())
    if required is not None and required not in offered:
        raise ProviderError(MSG_REQUIRED_PROVIDER_MISSING.format(provider=required, available=list(offered)))
    order = tuple(p for p in requested if p in offered)
    if not order:
        raise ProviderError(MSG_NO_PROVIDER.format(requested=list(requested), available=list(offered)))
    return ProviderPlan(requested=tuple(requested), available=offered, order=order, required=required)


@dataclass(frozen=True)
class ThreadPlan:
    """Inference worker threads, onnxruntime intra-op threads per run, and whether the event loop runs stream
    frames itself."""

    workers: int
    intra_op_threads: int
    frames_on_loop: bool = False


def plan_threads(
    workers: int, intra_op_threads: int, cores: int | None = None, frames_on_loop: bool | None = None
) -> ThreadPlan:
    """One worker per core by default, each run single-threaded: several streams then fill the cores. On one
    core the event loop runs stream frames itself, unless told otherwise (`frames_on_loop`)."""
    cores = cores or usable_cores()
    chosen_workers = workers or cores
    chosen_intra = intra_op_threads or max(1, cores // chosen_workers)
    on_loop = cores == 1 if frames_on_loop is None else frames_on_loop
    return ThreadPlan(workers=chosen_workers, intra_op_threads=chosen_intra, frames_on_loop=on_loop)


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    # Spinning threads burn a shared host's cores between frames; frames arrive 17-33 ms apart.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def create_session(path: str, plan: ProviderPlan, intra_op_threads: int) -> ort.InferenceSession:
    session = ort.InferenceSession(
        path, sess_options=session_options(intra_op_threads), providers=list(plan.order)
    )
    actual = session.get_providers()[0]
    if plan.required is not None and actual != plan.required:
        raise ProviderError(MSG_REQUIRED_PROVIDER_NOT_USED.format(provider=plan.required, actual=actual))
    if actual != plan.preferred:
        log.warning(
            "%s runs on %s although %s was preferred and offered: that provider failed to initialise",
            Path(path).name,
            actual,
            plan.preferred,
        )
    return session


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
