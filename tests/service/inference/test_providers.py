from __future__ import annotations

from pathlib import Path

import pytest

from usqa.service.inference import providers as P
from usqa.service.registry import ModelRegistry

from ..conftest import MODEL_NAME

CPU = P.CPU_PROVIDER
GPU_FIRST = ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU)


def test_plan_keeps_preference_order_among_offered_providers() -> None:
    plan = P.plan_providers(GPU_FIRST, available=["CUDAExecutionProvider", CPU])
    assert plan.order == ("CUDAExecutionProvider", CPU)
    assert plan.preferred == "CUDAExecutionProvider"


def test_plan_on_a_cpu_build_prefers_cpu() -> None:
    plan = P.plan_providers(GPU_FIRST, available=["AzureExecutionProvider", CPU])
    assert plan.order == (CPU,)


def test_a_required_provider_that_is_missing_fails_loudly() -> None:
    with pytest.raises(P.ProviderError) as info:
        P.plan_providers(GPU_FIRST, required="CUDAExecutionProvider", available=[CPU])
    assert str(info.value) == P.MSG_REQUIRED_PROVIDER_MISSING.format(
        provider="CUDAExecutionProvider", available=[CPU]
    )


def test_no_offered_provider_fails() -> None:
    with pytest.raises(P.ProviderError, match="none of the configured"):
        P.plan_providers(("CUDAExecutionProvider",), available=[CPU])


@pytest.mark.parametrize(
    ("workers", "intra", "cores", "expected"),
    [(0, 0, 2, (2, 1)), (1, 0, 2, (1, 2)), (0, 0, 8, (8, 1)), (2, 3, 8, (2, 3)), (0, 0, 1, (1, 1))],
)
def test_thread_plan(workers: int, intra: int, cores: int, expected: tuple[int, int]) -> None:
    plan = P.plan_threads(workers, intra, cores=cores)
    assert (plan.workers, plan.intra_op_threads) == expected


@pytest.mark.parametrize(
    ("cores", "asked", "on_loop"), [(1, None, True), (2, None, False), (1, False, False), (4, True, True)]
)
def test_the_event_loop_runs_stream_frames_on_one_core_unless_told(
    cores: int, asked: bool | None, on_loop: bool
) -> None:
    assert P.plan_threads(0, 0, cores=cores, frames_on_loop=asked).frames_on_loop is on_loop


def test_session_reports_the_provider_it_runs_on(source_registry: Path) -> None:
    version = ModelRegistry(source_registry).load(MODEL_NAME)
    plan = P.plan_providers((CPU,), required=CPU)
    session = P.create_session(str(version.graph_path("controller")), plan, intra_op_threads=1)
    assert session.get_providers()[0] == CPU
    assert session.get_session_options().intra_op_num_threads == 1
