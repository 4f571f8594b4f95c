"""A run's config.json: the resolved config written beside its outputs and read back to resume or rebuild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from usqa.contracts.training import TrainConfig


class RunConfig(Protocol):
    """What every run's config (training, heating, fine-tuning) offers for its config.json."""

    def to_dict(self) -> dict[str, Any]: ...


def write_config(config: RunConfig, path: Path) -> None:
    """The resolved config as pretty JSON, written beside a run's outputs (timm's args.yaml habit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_config_dict(path: Path) -> dict[str, Any]:
    """A run's config.json as written by `write_config`; each config class rebuilds itself with `from_dict`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: a config must be a JSON object")
    return data


def read_config(path: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_config_dict(path))
