"""The one device resolver of the trainer: the asked-for device or a loud error, never a silent CPU."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

AUTO = "auto"
MSG_NO_CUDA = (
    "device {device!r} was asked for, but torch {version} sees no CUDA device; use cpu (or auto) or a machine "
    "with a GPU"
)

MSG_NO_SUCH_CUDA = "device {device!r} was asked for, but torch sees {count} CUDA device(s)"


class DeviceError(ValueError):
    """A device that is not there (a user mistake: the CLI exits 2)."""


def resolve_device(name: str) -> torch.device:
    """`name` as a torch device; "auto" is CUDA when torch sees one, else the CPU (said in the log).

    Raises `DeviceError` when CUDA is asked for by name and torch sees none.
    """
    if name == AUTO:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log.info("device auto: %s", device)
        return device
    try:
        device = torch.device(name)
    except RuntimeError as exc:  # "gpu", "cuda:x": torch's message names the accepted forms
        raise DeviceError(str(exc)) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(MSG_NO_CUDA.format(device=name, version=torch.__version__))
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(MSG_NO_SUCH_CUDA.format(device=name, count=torch.cuda.device_count()))
    return device
