"""The frame specification: what every model input frame looks like, recorded in each model's manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast, get_args

CropMode = Literal["none", "auto"]
Interpolation = Literal["area"]

CROP_MODES: tuple[str, ...] = get_args(CropMode)
INTERPOLATIONS: tuple[str, ...] = get_args(Interpolation)

BAD_SIZE = "FrameSpec.size must be a positive integer, got {value!r}"
BAD_CROP = "FrameSpec.crop must be one of {allowed}, got {value!r}"
BAD_INTERPOLATION = "FrameSpec.interpolation must be one of {allowed}, got {value!r}"
UNKNOWN_FIELDS = "unknown FrameSpec fields: {names}"


@dataclass(frozen=True)
class FrameSpec:
    """How a decoded frame becomes a model input; training and serving share one instance per model.

    `size` is the side of the square model input in pixels; `crop="auto"` crops to the detected scan
    region first; `interpolation` names the one resize method (kept so a manifest states it).
    """

    size: int = 128
    crop: CropMode = "none"
    interpolation: Interpolation = "area"

    def __post_init__(self) -> None:
        # bool is an int subclass; `size=True` is a bug, not a 1-pixel model.
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(BAD_SIZE.format(value=self.size))
        if self.crop not in CROP_MODES:
            raise ValueError(BAD_CROP.format(allowed=", ".join(CROP_MODES), value=self.crop))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                BAD_INTERPOLATION.format(allowed=", ".join(INTERPOLATIONS), value=self.interpolation)
            )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FrameSpec:
        """Read a spec from a manifest; missing fields take their defaults, unknown fields are refused."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(str(name) for name in d if name not in known)
        if unknown:
            raise ValueError(UNKNOWN_FIELDS.format(names=", ".join(unknown)))
        # __post_init__ validates every value, so the cast only tells mypy what was checked.
        return cls(**cast("dict[str, Any]", dict(d)))
