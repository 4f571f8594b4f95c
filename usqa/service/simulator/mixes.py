"""Degradation mixes: which kinds a degraded episode draws from, how often each, and at what severity.

A mix is selected by name (`usqa simulate --mix NAME`). `standard` is the simulator's original behaviour
(every kind equally often, severity in [0.15, 1]) and draws exactly the same random numbers, so data sets
written before mixes existed are reproduced byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usqa.service.simulator.degradations import DEGRADATION_KINDS, DEGRADATIONS, SEVERITY_RANGE


@dataclass(frozen=True)
class DegradationMix:
    """A named distribution of degradations: kinds listed once per unit of weight, and a severity range."""

    name: str
    # A kind listed twice is drawn twice as often: one `integers` draw picks an entry, as before mixes.
    kinds: tuple[str, ...]
    severity: tuple[float, float]
    purpose: str

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(DEGRADATIONS))
        if unknown or not self.kinds:
            raise ValueError(f"mix {self.name!r}: unknown or no degradation kinds {unknown}")
        low, high = self.severity
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"mix {self.name!r}: severity range {self.severity} is not within [0, 1]")

    def draw(self, rng: np.random.Generator) -> tuple[str, float]:
        """One episode's kind and severity (three decimals)."""
        kind = str(self.kinds[int(rng.integers(len(self.kinds)))])
        return kind, round(float(rng.uniform(*self.severity)), 3)

    def shares(self) -> dict[str, float]:
        """Each kind's share of degraded episodes."""
        return {kind: self.kinds.count(kind) / len(self.kinds) for kind in dict.fromkeys(self.kinds)}


STANDARD = DegradationMix(
    name="standard",
    kinds=DEGRADATION_KINDS,
    severity=SEVERITY_RANGE,
    purpose="every kind equally often, barely visible to as bad as it gets (the default)",
)
# Development: the kinds that take the organ away (a shadow cast over it, lost contact, a gain or noise
# level that sinks the picture), at severities where most episodes destroy the evidence. Shadows weigh
# least: most leave half the organ visible, and one cast over the organ hints at it. Partial views
# and blur, which mostly spoil segmentation, are left out: this mix is about classification evidence.
EVIDENCE_LOSS = DegradationMix(
    name="evidence_loss",
    kinds=(
        "acoustic_shadow",
        "contact_loss",
        "contact_loss",
        "low_gain",
        "low_gain",
        "electronic_noise",
        "electronic_noise",
    ),
    severity=(0.6, 1.0),
    purpose="development: shadows over the organ, lost contact, low gain, noise at high severity",
)
# Held out: another balance of kinds and severities, touched only to report.
HELD_OUT_MIX = DegradationMix(
    name="held_out",
    kinds=(
        "electronic_noise",
        "electronic_noise",
        "low_gain",
        "contact_loss",
        "motion_blur",
        "reverberation",
        "reverberation",
        "burned_in_overlay",
        "partial_view",
        "acoustic_shadow",
    ),
    severity=(0.5, 1.0),
    purpose="held out: noise and reverberation heavy, every kind present, medium to full severity",
)

MIXES: dict[str, DegradationMix] = {m.name: m for m in (STANDARD, EVIDENCE_LOSS, HELD_OUT_MIX)}
MIX_NAMES: tuple[str, ...] = tuple(MIXES)


def get_mix(name: str) -> DegradationMix:
    """The mix called `name`; a clear error listing the choices otherwise."""
    try:
        return MIXES[name]
    except KeyError:
        raise ValueError(f"unknown degradation mix {name!r}; choose one of {', '.join(MIX_NAMES)}") from None
