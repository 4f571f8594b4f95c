"""`python -m experiments.drift`: the served model's score and out-of-distribution PSI (usqa/service/live/drift.py)
on single simulated sweeps of its own distribution, on those sweeps pooled, on the built-in demo cine and on
pydicom's cardiac echo; what `ALARM_PSI` and `SERVICE_MIN_FRAMES` are set from."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import numpy as np
import pydicom.examples

from usqa.service.api.cine import demo_cine
from usqa.service.frames import decode_bytes
from usqa.service.frames.preprocess import prepare_frame
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.offline import open_model
from usqa.service.live.drift import ALARM_PSI, DriftMonitor, ood_reference, score_reference
from usqa.service.registry import CHAMPION
from usqa.service.settings import get_settings
from usqa.service.simulator import simulate_cine


def line(model: LoadedModel, images: list[np.ndarray]) -> str:
    score, ood, out = indices(model, images)
    return f"{score:.2f}  {ood:.2f}  {out:.3f}"


def indices(model: LoadedModel, images: list[np.ndarray]) -> tuple[float, float, float]:
    """(score PSI, OOD PSI, out-of-scope share) of `images` as one population."""
    outputs = model.run(np.stack([prepare_frame(image, model.spec) for image in images]))
    score = DriftMonitor(score_reference(model.manifest), len(images))
    ood = DriftMonitor(ood_reference(model.manifest), len(images))
    for value in outputs.scores:
        score.add(float(value))
    assert outputs.ood_distance is not None and model.manifest.ood is not None
    for value in outputs.ood_distance:
        ood.add(float(value))
    out = float((outputs.ood_distance > model.manifest.ood.threshold).mean())
    return score.psi() or float("nan"), ood.psi() or float("nan"), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    parser.add_argument("--sweeps", type=int, default=12)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    settings = get_settings().model_copy(update={"registry": args.registry})
    model = open_model(settings, name=args.name, ref=CHAMPION)  # as `usqa score` opens it
    print(
        f"{args.name} v{model.number}; PSI of scores, PSI of OOD distances, out-of-scope share; alarm {ALARM_PSI}"
    )
    pooled: list[np.ndarray] = []
    for seed in range(args.sweeps):
        sweep = [f.image for f in simulate_cine("transrectal_prostate", args.frames, seed=seed)]
        pooled += sweep
        print(f"sweep seed {seed:2d} ({args.frames} frames): {line(model, sweep)}")
    print(f"sweeps pooled ({len(pooled)} frames): {line(model, pooled)}")
    cine = demo_cine("transrectal_prostate", 150)
    demo = [
        decode_bytes(base64.b64decode(url.split(",", 1)[1]), max_pixels=1 << 24, max_frames=1)[0]
        for url in cine.frames
    ]
    print(f"demo cine ({len(demo)} frames): {line(model, demo)}")
    echo = decode_bytes(
        pydicom.examples.get_path("ybr_color").read_bytes(),
        None,
        width=None,
        height=None,
        max_pixels=1 << 24,
        max_frames=64,
    )
    print(f"cardiac echo ({len(echo)} frames): {line(model, echo)}")


if __name__ == "__main__":
    main()
