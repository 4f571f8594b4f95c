"""Networks take uint8-valued frames, produce the right shapes, and share a loadable backbone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from usqa.contracts.training import BackboneConfig, ControllerConfig, UNetConfig
from usqa.trainer.networks import (
    Controller,
    FrameClassifier,
    UNet,
    build_predictor,
    load_backbone,
    seeded_init,
)
from usqa.trainer.recipe.presets import preset

SMALL = BackboneConfig(widths=(4, 8))


def frames(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8)


def test_shapes_and_ranges() -> None:
    x = frames()
    assert FrameClassifier(SMALL, 3)(x).shape == (3, 3)
    assert UNet(UNetConfig(widths=(4, 8)))(x).shape == (3, 2, 32, 32)
    scores = Controller(ControllerConfig(backbone=SMALL))(x)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()


def test_uint8_and_float_inputs_agree_because_scaling_is_inside() -> None:
    x = frames()
    net = FrameClassifier(SMALL, 2).eval()
    assert torch.allclose(net(x), net(x.float()))


def test_controller_starts_at_its_initial_score() -> None:
    scores = Controller(ControllerConfig(backbone=SMALL, initial_score=0.8))(frames())
    assert torch.allclose(scores, torch.full((3,), 0.8), atol=1e-5)


def test_seeded_init_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    with seeded_init(5):
        a = FrameClassifier(SMALL, 2)
    assert torch.equal(torch.rand(1), expected_next)
    with seeded_init(5):
        b = FrameClassifier(SMALL, 2)
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_a_classifier_backbone_initialises_the_controller() -> None:
    classifier = FrameClassifier(SMALL, 2)
    controller = Controller(ControllerConfig(backbone=SMALL))
    missing = load_backbone(controller, classifier.state_dict())  # "backbone."-prefixed keys
    assert missing == []
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(controller.backbone.state_dict()[key], value)
    with pytest.raises(ValueError):
        load_backbone(controller, {"nothing.here": torch.zeros(1)})


def test_a_foreground_prior_starts_every_pixel_at_that_probability() -> None:
    config = preset("debug", task="segment")
    config = replace(config, unet=replace(config.unet, foreground_prior=0.05))
    unet = build_predictor(config).eval()
    with torch.no_grad():
        out = unet.out(torch.zeros(1, config.unet.widths[0], 4, 4))
    assert torch.softmax(out, dim=1)[:, 1].flatten().tolist() == pytest.approx([0.05] * 16, abs=1e-5)
