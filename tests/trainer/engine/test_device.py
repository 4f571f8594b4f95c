"""One device resolver: the asked-for device or a loud error, never a silent CPU."""

from __future__ import annotations

import pytest
import torch

from usqa.trainer.engine.device import DeviceError, resolve_device


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA on a machine without it")
def test_cuda_without_a_device_is_an_error_naming_it() -> None:
    with pytest.raises(DeviceError, match=r"'cuda:1'.*no CUDA device"):
        resolve_device("cuda:1")


def test_a_device_index_past_the_last_is_an_error() -> None:
    with pytest.raises(DeviceError, match="CUDA"):
        resolve_device(f"cuda:{max(torch.cuda.device_count(), 1) + 7}")


def test_an_unknown_name_is_an_error() -> None:
    with pytest.raises(DeviceError, match="cpu, cuda"):
        resolve_device("gpu")
