"""Engine callbacks: progress bar, metrics.jsonl, periodic checkpoints, and a progress hook for job runners."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from trainer.engine import AmenabilityEngine, Callback, EpisodeLog

CHECKPOINT_FORMAT = 1


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and a rename: a reader never sees half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ProgressBar(Callback):
    """A tqdm bar per stage showing episode, reward and metric."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self.bar: tqdm[Any] | None = None

    def on_stage_start(self, engine: AmenabilityEngine, stage: str, episodes: int) -> None:
        self.bar = tqdm(
            total=engine.config.episodes,
            initial=engine.episode,
            desc=stage,
            unit="episode",
            disable=self.disable,
            dynamic_ncols=True,
        )

    def on_episode_end(self, engine: AmenabilityEngine, log: EpisodeLog) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                reward=f"{log.reward:.3f}", metric=f"{log.metric:.3f}", kept=f"{log.selected_fraction:.2f}"
            )
            self.bar.update(1)

    def on_stage_end(self, engine: AmenabilityEngine, stage: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLog(Callback):
    """Appends each episode's log to metrics.jsonl, one JSON object a line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_episode_end(self, engine: AmenabilityEngine, log: EpisodeLog) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(log.to_dict(), sort_keys=True) + "\n")


def truncate_metrics(path: Path, stage: str, episode: int) -> None:
    """On resume, drop lines of `stage` past the checkpointed `episode` so the log matches the state."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
        and not ((row := json.loads(line))["stage"] == stage and int(row["episode"]) > episode)
    ]
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


class Checkpointer(Callback):
    """Writes `checkpoint.pt` (config + full engine state) every `every` episodes and at the stage's end."""

    def __init__(self, path: Path, every: int, extra: dict[str, Any] | None = None) -> None:
        self.path, self.every, self.extra = path, max(1, every), extra or {}

    def save(self, engine: AmenabilityEngine) -> None:
        atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": engine.config.to_dict(),
                "engine": engine.state_dict(),
                **self.extra,
            },
            self.path,
        )

    def on_episode_end(self, engine: AmenabilityEngine, log: EpisodeLog) -> None:
        if log.episode % self.every == 0 or log.episode == log.episodes:
            self.save(engine)


class ProgressHook(Callback):
    """Calls `report(event)` with {stage, episode, episodes, metrics, eta_s}: for Celery `update_state`."""

    def __init__(self, report: Callable[[dict[str, Any]], None]) -> None:
        self.report = report

    def on_episode_end(self, engine: AmenabilityEngine, log: EpisodeLog) -> None:
        self.report(
            {
                "stage": log.stage,
                "episode": log.episode,
                "episodes": log.episodes,
                "metrics": {"reward": log.reward, "metric": log.metric, **log.learner},
                "eta_s": log.eta_s,
            }
        )
