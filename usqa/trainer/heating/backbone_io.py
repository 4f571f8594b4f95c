"""The backbone checkpoint: a `ResNetBackbone` state_dict with the `BackboneConfig` that rebuilds it.

This is the file `usqa heat` and `usqa finetune` write as `RUN/backbone.pt`, and the one the RL trainer's
`--backbone PATH` reads to initialise its predictor and/or controller:

    state, config = load_backbone(path)          # config: usqa.contracts.training.BackboneConfig
    usqa.trainer.networks.load_backbone(predictor, state)

The file holds tensors, numbers and strings only, so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from usqa.contracts.training import BackboneConfig, from_dict
from usqa.trainer.engine.callbacks import atomic_torch_save
from usqa.trainer.heating.run_folder import BACKBONE_FILE

BACKBONE_FORMAT = "usqa-backbone/1"
MSG_NOT_BACKBONE = "{path} is not a usqa backbone checkpoint (no {format!r} format tag)"
MSG_NO_FILE = "no backbone checkpoint at {path}"


class BackboneFileError(ValueError):
    """A path that is not a readable backbone checkpoint (a user mistake: the CLI exits 2)."""


def resolve_backbone_path(path: Path | str) -> Path:
    """A backbone file, or a run folder holding `backbone.pt`."""
    path = Path(path)
    if path.is_dir():
        path = path / BACKBONE_FILE
    if not path.is_file():
        raise BackboneFileError(MSG_NO_FILE.format(path=path))
    return path


def save_backbone(
    path: Path | str,
    backbone_state: Mapping[str, torch.Tensor],
    config: BackboneConfig,
    meta: Mapping[str, Any] | None = None,
    *,
    head_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write the backbone state (keys as in `ResNetBackbone.state_dict()`), its config and metadata.

    `meta` (JSON-like: frame spec, class names, source run, steps) says what the backbone was trained on;
    `head_state`, the classifier head for those classes, lets fine-tuning on the same classes keep it.
    """
    path = Path(path)
    state = {k.removeprefix("backbone."): v.detach().cpu().clone() for k, v in backbone_state.items()}
    payload = {
        "format": BACKBONE_FORMAT,
        "backbone": state,
        "config": dataclasses.asdict(config),
        "meta": dict(meta or {}),
        "head": None if head_state is None else {k: v.detach().cpu().clone() for k, v in head_state.items()},
    }
    atomic_torch_save(payload, path)
    return path


def _read(path: Path | str) -> dict[str, Any]:
    resolved = resolve_backbone_path(path)
    try:
        payload = torch.load(resolved, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise BackboneFileError(f"cannot read {resolved}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != BACKBONE_FORMAT:
        raise BackboneFileError(MSG_NOT_BACKBONE.format(path=resolved, format=BACKBONE_FORMAT))
    return payload


def load_backbone(path: Path | str) -> tuple[dict[str, torch.Tensor], BackboneConfig]:
    """The backbone state_dict (CPU tensors) and the config that rebuilds it."""
    payload = _read(path)
    return dict(payload["backbone"]), from_dict(BackboneConfig, payload["config"])


def read_backbone_meta(path: Path | str) -> dict[str, Any]:
    """The metadata saved with a backbone (frame spec, class names, source, steps); {} when it has none."""
    return dict(_read(path).get("meta") or {})


def load_head(path: Path | str) -> dict[str, torch.Tensor] | None:
    """The classifier head saved with a backbone (for its `meta["class_names"]`), or None."""
    head = _read(path).get("head")
    return None if head is None else dict(head)
