from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from usqa.trainer.heating.augment import CutMix, RandAugment, _equalize


def _batch(n: int = 6, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), generator=g).float(), torch.arange(n)


def test_cutmix_pastes_one_box_and_weights_labels_by_its_area() -> None:
    frames, labels = _batch()
    mixed = CutMix(alpha=1.0, seed=3)(frames, labels)
    changed = (mixed.frames != frames).any(dim=(0, 1))
    pasted = float(changed.float().mean())
    assert 0.0 <= pasted <= 1 - mixed.lam + 1e-6
    assert torch.equal(mixed.labels_a, labels)
    assert sorted(mixed.labels_b.tolist()) == labels.tolist()
    again = CutMix(alpha=1.0, seed=3)(frames, labels)
    assert torch.equal(again.frames, mixed.frames) and again.lam == mixed.lam


def test_randaugment_is_seeded_bounded_and_changes_frames() -> None:
    frames, _ = _batch()
    out = RandAugment(ops=2, magnitude=9, size=16, seed=1)(frames)
    assert out.shape == frames.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert torch.equal(out, RandAugment(ops=2, magnitude=9, size=16, seed=1)(frames))
    assert not torch.equal(out, frames)


def test_equalize_is_pils() -> None:
    image = np.random.default_rng(0).normal(90, 20, (24, 24)).clip(0, 255).astype(np.uint8)
    expected = np.asarray(ImageOps.equalize(Image.fromarray(image)))
    ours = _equalize(torch.from_numpy(image).float()[None])[0].numpy()
    np.testing.assert_array_equal(ours, expected)
