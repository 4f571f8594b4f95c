"""Ultrasound augmentation of training mini-batches: MONAI transforms, one seeded generator, resumable.

What varies between scanners, presets and operators, and so what a predictor should not depend on: overall
gain and contrast (time-gain compensation, dynamic range), a gamma-like log-compression curve, the envelope
noise (Rician, the statistic of a detected echo, so speckle keeps its character), the probe's left-right
orientation and small shifts, rotations and zooms of the anatomy. Up-down flips are left out: the probe is at
the top of every frame and the far field looks different from the near field.

Every random draw comes from one `numpy.random.RandomState` shared by all transforms (MONAI's
`set_random_state`), so a seed fixes the result exactly and `state_dict()` lets a resumed run continue it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandRicianNoised,
    RandScaleIntensityd,
)

IMAGE, MASK = "image", "mask"


class UltrasoundAugment:
    """Augments a batch of frames `[N, 1, S, S]` (uint8-valued) and, for segmentation, their masks `[N, S, S]`."""

    def __init__(self, seed: int, segmentation: bool = False) -> None:
        keys = [IMAGE, MASK] if segmentation else [IMAGE]
        spatial_modes = ("bilinear", "nearest") if segmentation else ("bilinear",)
        self.transforms = Compose(
            [
                RandScaleIntensityd(IMAGE, factors=0.25, prob=0.5),  # gain: x * (1 + U(-0.25, 0.25))
                RandAdjustContrastd(IMAGE, gamma=(0.7, 1.5), prob=0.5),  # log-compression curve
                RandRicianNoised(IMAGE, std=0.04, prob=0.3),  # envelope noise, on [0, 1] frames
                RandFlipd(keys, spatial_axis=1, prob=0.5),  # left-right only (the probe stays on top)
                RandAffined(
                    keys,
                    prob=0.5,
                    rotate_range=0.1,  # radians, about 6 degrees
                    translate_range=(4, 4),
                    scale_range=(0.1, 0.1),
                    mode=spatial_modes,
                    padding_mode="zeros",
                ),
            ]
        )
        self.segmentation = segmentation
        self.random_state = np.random.RandomState(seed)
        # Each transform gets this one generator (Compose.set_random_state would seed a generator per transform
        # from it, and then this generator's state alone would not resume them).
        for transform in self.transforms.transforms:
            transform.set_random_state(state=self.random_state)

    def __call__(
        self, frames: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augmented (frames as float 0..255, targets); targets pass through unless they are masks."""
        images = frames.detach().float().cpu() / 255.0
        masks = targets.detach().cpu() if self.segmentation and targets is not None else None
        out_images, out_masks = [], []
        # MONAI's metadata tracking (MetaTensor) doubles the cost on CPU and nothing here reads it.
        tracking = get_track_meta()
        set_track_meta(False)
        try:
            for i in range(len(images)):
                sample: dict[str, Any] = {IMAGE: images[i]}
                if masks is not None:
                    sample[MASK] = masks[i].unsqueeze(0).float()
                result = self.transforms(sample)
                out_images.append(torch.as_tensor(result[IMAGE]).clamp(0.0, 1.0))
                if masks is not None:
                    out_masks.append(torch.as_tensor(result[MASK])[0].round().long())
        finally:
            set_track_meta(tracking)
        augmented = (torch.stack(out_images) * 255.0).to(frames.device)
        if masks is None:
            return augmented, targets
        return augmented, torch.stack(out_masks).to(targets.device if targets is not None else "cpu")

    def state_dict(self) -> dict[str, Any]:
        return {"random_state": self.random_state.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.random_state.set_state(state["random_state"])
