"""`weights.npz`: a published version's torch weights, readable without torch, so a site can adapt it.

Layout: one numpy array per state-dict entry, named `predictor/<key>` or `controller/<key>`, and a
`format` scalar. The config that rebuilds the networks is the manifest's `training_config`. Export lists
the file among the version's files, so the registry's sha256 checks cover it like the graphs.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS_FILE = "weights.npz"
WEIGHTS_FORMAT = 1
ROLES: tuple[str, ...] = ("predictor", "controller")
MSG_BAD_WEIGHTS = "{path}: not a usqa weights file ({why})"


class WeightsFileError(ValueError):
    """A weights file that cannot be read or does not fit the networks."""


def save_weights(path: Path, predictor: nn.Module, controller: nn.Module) -> Path:
    """Both networks' state dicts as numpy arrays in one uncompressed npz (the graphs dominate the size)."""
    arrays: dict[str, np.ndarray] = {"format": np.array(WEIGHTS_FORMAT, np.int64)}
    for role, network in (("predictor", predictor), ("controller", controller)):
        for key, tensor in network.state_dict().items():
            arrays[f"{role}/{key}"] = tensor.detach().cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return path


def read_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{"predictor": {key: array}, "controller": {...}}; raises `WeightsFileError` for anything else."""
    try:
        with np.load(path, allow_pickle=False) as blob:
            arrays = {name: blob[name] for name in blob.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsFileError(MSG_BAD_WEIGHTS.format(path=path, why=exc)) from exc
    if int(arrays.pop("format", np.array(-1))) != WEIGHTS_FORMAT:
        raise WeightsFileError(MSG_BAD_WEIGHTS.format(path=path, why=f"format is not {WEIGHTS_FORMAT}"))
    states: dict[str, dict[str, np.ndarray]] = {role: {} for role in ROLES}
    for name, array in arrays.items():
        role, _, key = name.partition("/")
        if role not in states or not key:
            raise WeightsFileError(MSG_BAD_WEIGHTS.format(path=path, why=f"unexpected entry {name!r}"))
        states[role][key] = array
    return states


def load_weights(network: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Load numpy arrays into `network` (every key must fit, shapes included)."""
    try:
        network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    except RuntimeError as exc:
        raise WeightsFileError(f"the weights do not fit the network its config builds: {exc}") from exc
    return network
