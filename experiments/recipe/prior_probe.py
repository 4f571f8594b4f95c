"""Does the U-Net's output-bias prior get it out of "everything is foreground" sooner? A supervised probe.

The demo preset's U-Net at 64 px, batch 16, AdamW 1e-3, `dice_ce`, no controller; validation Dice on the
first 64 validation frames every 20 steps, with the default output bias and with the prior one.

    python -m experiments.recipe.prior_probe --data /tmp/recipe/dev1200 --steps 120
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from usqa.contracts.training import RecipeConfig
from usqa.trainer.amenability.engine import frame_metric, predictor_loss
from usqa.trainer.data import load_task_data
from usqa.trainer.networks import build_predictor, seeded_init
from usqa.trainer.recipe.presets import preset


def probe(data_dir: Path, steps: int, prior: bool, seed: int = 0) -> list[tuple[int, float]]:
    config = replace(preset("demo", "segment"), recipe=RecipeConfig())
    data = load_task_data(data_dir, config)
    if prior:
        fraction = float(data.train.targets.float().mean())
        config = replace(config, unet=replace(config.unet, foreground_prior=fraction))
    with seeded_init(seed):
        unet = build_predictor(config)
    optimiser = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    frames, masks = data.val.frames[:64], data.val.targets[:64]
    curve = []
    for step in range(1, steps + 1):
        index = torch.randint(0, len(data.train), (16,), generator=generator)
        unet.train()
        loss = predictor_loss(unet(data.train.frames[index]), data.train.targets[index], "dice_ce")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 20 == 0:
            unet.eval()
            with torch.no_grad():
                curve.append((step, float(frame_metric("segment", unet(frames), masks).mean())))
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=120)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for prior in (False, True):
        curve = probe(args.data, args.steps, prior)
        print("prior" if prior else "default", " ".join(f"{s}:{d:.3f}" for s, d in curve), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
