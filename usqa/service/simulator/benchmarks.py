"""Named benchmark settings: the simulated data sets the paper experiments run on, each with its role.

`development` settings may inform every decision (architecture, hyper-parameters, thresholds). `held_out`
settings differ in probe, organ, degradation mix, severities and seed, and are generated only to report
a finished method's numbers: nobody tunes on them. `usqa simulate --setting NAME --out DIR` writes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["development", "held_out"]


@dataclass(frozen=True)
class BenchmarkSetting:
    """Everything `write_dataset` needs, under one name, with the role that says who may look at it."""

    name: str
    role: Role
    preset: str
    mix: str
    degraded_fraction: float
    seed: int
    frames: int
    subjects: int
    size: int = 128

    def command(self, out: str) -> str:
        """The equivalent `usqa simulate` command line (what the docs print next to the numbers)."""
        return (
            f"usqa simulate --out {out} --preset {self.preset} --mix {self.mix} "
            f"--degraded-fraction {self.degraded_fraction} --seed {self.seed} --frames {self.frames} "
            f"--subjects {self.subjects} --size {self.size}"
        )


# Development, where amenability matters: about 30 % of frames lose the evidence for the gland (shadow
# over it, lost contact, noise, low gain), so rejecting them by ground truth is worth many points.
PROSTATE_EVIDENCE_LOSS = BenchmarkSetting(
    name="prostate_evidence_loss",
    role="development",
    preset="transrectal_prostate",
    mix="evidence_loss",
    degraded_fraction=0.5,
    seed=0,
    frames=2400,
    subjects=80,
)
# Held out: another probe (wide, shallow linear array), another organ (small irregular breast lesion),
# another degradation mix and severities, another seed. Touched only to report.
BREAST_HELD_OUT = BenchmarkSetting(
    name="breast_held_out",
    role="held_out",
    preset="linear_breast",
    mix="held_out",
    degraded_fraction=0.5,
    seed=7919,
    frames=2400,
    subjects=48,
)

SETTINGS: dict[str, BenchmarkSetting] = {s.name: s for s in (PROSTATE_EVIDENCE_LOSS, BREAST_HELD_OUT)}
SETTING_NAMES: tuple[str, ...] = tuple(SETTINGS)


def get_setting(name: str) -> BenchmarkSetting:
    """The benchmark setting called `name`; a clear error listing the choices otherwise."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValueError(
            f"unknown benchmark setting {name!r}; choose one of {', '.join(SETTING_NAMES)}"
        ) from None
