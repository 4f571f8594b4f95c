"""The ultrasound augmentation: seeded, exact, resumable, and masks follow their frames."""

from __future__ import annotations

import torch

from usqa.trainer.augment import UltrasoundAugment


def frames(n: int = 6, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(0)).to(
        torch.uint8
    )


def test_a_seed_fixes_the_augmentation_exactly() -> None:
    x = frames()
    a, _ = UltrasoundAugment(seed=3)(x)
    b, _ = UltrasoundAugment(seed=3)(x)
    c, _ = UltrasoundAugment(seed=4)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 255.0


def test_state_dict_continues_the_same_sequence() -> None:
    x = frames()
    straight = UltrasoundAugment(seed=5)
    straight(x)
    expected, _ = straight(x)
    first = UltrasoundAugment(seed=5)
    first(x)
    resumed = UltrasoundAugment(seed=99)
    resumed.load_state_dict(first.state_dict())
    got, _ = resumed(x)
    assert torch.equal(got, expected)


def test_masks_stay_binary_and_move_with_their_frames() -> None:
    # A bright square on black with its mask: after flips and affine moves, the mask covers the bright pixels.
    x = torch.zeros(8, 1, 32, 32, dtype=torch.uint8)
    x[:, :, 8:20, 4:14] = 200
    masks = (x[:, 0] > 0).long()
    augmented, moved = UltrasoundAugment(seed=1, segmentation=True)(x, masks)
    assert moved is not None and moved.shape == masks.shape and set(moved.unique().tolist()) <= {0, 1}
    bright = augmented[:, 0] > 60
    overlap = (bright & (moved == 1)).sum() / (bright | (moved == 1)).sum()
    assert float(overlap) > 0.8


def test_classification_targets_pass_through() -> None:
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    _, out = UltrasoundAugment(seed=0)(frames(), labels)
    assert out is labels
