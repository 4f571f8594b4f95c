from __future__ import annotations

import dataclasses
import json

import pytest

from usqa.contracts.frames import (
    BAD_CROP,
    BAD_INTERPOLATION,
    BAD_SIZE,
    UNKNOWN_FIELDS,
    FrameSpec,
)


def test_defaults_match_the_documented_model_input() -> None:
    assert FrameSpec().to_dict() == {"size": 128, "crop": "none", "interpolation": "area"}


def test_round_trips_through_a_json_manifest() -> None:
    spec = FrameSpec(size=96, crop="auto")
    assert FrameSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_missing_fields_take_their_defaults() -> None:
    assert FrameSpec.from_dict({"size": 64}) == FrameSpec(size=64)
    assert FrameSpec.from_dict({}) == FrameSpec()


def test_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FrameSpec().size = 64  # type: ignore[misc]


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(ValueError) as caught:
        FrameSpec.from_dict({"size": 64, "resize": "cubic", "channels": 3})
    assert str(caught.value) == UNKNOWN_FIELDS.format(names="channels, resize")


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "128", None])
def test_size_must_be_a_positive_integer(size: object) -> None:
    with pytest.raises(ValueError) as caught:
        FrameSpec.from_dict({"size": size})
    assert str(caught.value) == BAD_SIZE.format(value=size)


@pytest.mark.parametrize("crop", ["AUTO", "fan", "", None])
def test_crop_must_be_a_known_mode(crop: object) -> None:
    with pytest.raises(ValueError) as caught:
        FrameSpec.from_dict({"crop": crop})
    assert str(caught.value) == BAD_CROP.format(allowed="none, auto", value=crop)


@pytest.mark.parametrize("interpolation", ["linear", "cubic", "INTER_AREA", None])
def test_interpolation_is_the_one_documented_method(interpolation: object) -> None:
    with pytest.raises(ValueError) as caught:
        FrameSpec.from_dict({"interpolation": interpolation})
    assert str(caught.value) == BAD_INTERPOLATION.format(allowed="area", value=interpolation)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        FrameSpec(size=0)
