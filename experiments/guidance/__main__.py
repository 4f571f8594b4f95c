"""`python -m experiments.guidance`: verdicts of the served model on the issue's degraded sweep (`usqa simulate
--frames 300 --subjects 3 --seed 17 --degraded-fraction 0.5`) and on the live page's demo cine, each frame by
itself and as the stream's guidance says them (docs/rejection.md)."""

from __future__ import annotations

import argparse
import base64
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from usqa.service.api.cine import demo_cine
from usqa.service.frames import decode_bytes, iter_source_frames
from usqa.service.inference.guidance import GuidanceConfig
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.offline import open_model, score_frames
from usqa.service.inference.verdict import DEFAULT_LIMITS
from usqa.service.registry import CHAMPION
from usqa.service.settings import get_settings
from usqa.service.simulator import write_dataset


def counts(model: LoadedModel, frames: list[np.ndarray]) -> tuple[Counter[str], Counter[str]]:
    rows = list(
        score_frames(model, ((str(i), f) for i, f in enumerate(frames)), GuidanceConfig(), DEFAULT_LIMITS)
    )
    return Counter(f"{r.verdict.verdict}/{r.verdict.reason}" for r in rows), Counter(
        str(r.guidance) for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    args = parser.parse_args()
    settings = get_settings().model_copy(update={"registry": args.registry})
    model = open_model(settings, name=args.name, ref=CHAMPION)  # as `usqa score` opens it
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(Path(folder), frames=300, subjects=3, seed=17, degraded_fraction=0.5, workers=1)
        sweep = [
            frame
            for _, frame in iter_source_frames(Path(folder) / "frames", max_pixels=1 << 24, max_frames=1000)
        ]
    cine = demo_cine("transrectal_prostate", 150)
    demo = [
        decode_bytes(base64.b64decode(u.split(",", 1)[1]), max_pixels=1 << 24, max_frames=1)[0]
        for u in cine.frames
    ]
    print(f"{args.name} v{model.number}")
    for name, frames in (("degraded sweep", sweep), ("demo cine", demo)):
        itself, guidance = counts(model, frames)
        print(f"{name} ({len(frames)} frames), each frame by itself: {dict(sorted(itself.items()))}")
        print(f"{name}, the stream's guidance: {dict(sorted(guidance.items()))}")


if __name__ == "__main__":
    main()
