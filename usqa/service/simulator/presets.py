"""Presets: a probe, a tissue and an organ of interest, as one frozen description per clinical setting.

Lengths are in centimetres in the probe's frame (x lateral, y away from the probe). Speckle grain is given
in output pixels at the reference size (128 px) and scales with the frame size, so a preset looks the same
at any size; it is the grain as displayed on a small frame, not the transducer's physical resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

REFERENCE_SIZE = 128


@dataclass(frozen=True)
class ProbeGeometry:
    """Where the scan lines are: a fan from an apex (sector, curvilinear) or parallel lines (linear)."""

    kind: Literal["sector", "linear"]
    depth_cm: float
    # Sector only: distance from the virtual apex to the array face, and half the fan's opening angle.
    radius_cm: float = 0.0
    half_angle_deg: float = 0.0
    # Linear only: aperture width.
    width_cm: float = 0.0


@dataclass(frozen=True)
class TissueLayer:
    """A band of tissue parallel to the probe face (skin, muscle, rectal wall): echogenicity x `factor`."""

    start_cm: float
    stop_cm: float
    factor: float


@dataclass(frozen=True)
class Preset:
    """Everything that makes one clinical setting look like itself; subjects draw within these ranges."""

    name: str
    probe: ProbeGeometry
    # Speckle grain (Gaussian PSF sigma, output pixels at REFERENCE_SIZE): short axially, wider laterally.
    speckle_axial_px: float
    speckle_lateral_px: float
    # Round-trip attenuation and the share of it that time-gain compensation gives back, per subject.
    attenuation_db_per_cm: float
    tgc_compensation: tuple[float, float]
    dynamic_range_db: float
    # Grey level (0..1) of average tissue (echogenicity 1) at unit gain before attenuation.
    tissue_display_level: float
    # Electronic noise amplitude relative to average tissue at the probe face, in dB (negative).
    noise_floor_db: float
    background_echogenicity: tuple[float, float]
    scatterer_density: tuple[float, float]
    gain_db: tuple[float, float]
    # Large-scale tissue texture: log-normal sigma of a smooth random field.
    texture_sigma: float
    layers: tuple[TissueLayer, ...]
    # The organ: semi-axes (cm) at the widest cross-section of the sweep, before the subject's scaling.
    organ_name: str
    organ_semi_axes_cm: tuple[float, float]
    organ_depth_fraction: tuple[float, float]
    # Lateral position of the organ's centre, as a share of the half field (0 = on the middle line).
    organ_lateral_fraction: float
    organ_contrast: tuple[float, float]
    capsule_brightness: tuple[float, float]
    capsule_thickness_cm: float
    # Low-order radius harmonics (k = 2, 3, 4): maximum relative amplitude of each.
    organ_harmonics: tuple[float, float, float]
    # Inner region (transition zone, renal sinus) as a fraction of the radius, with its echogenicity factor.
    organ_core_fraction: float
    organ_core_factor: tuple[float, float]
    # Anechoic round structures (vessels, cysts) that are not the organ: how many and how large.
    vessel_count: tuple[int, int]
    vessel_radius_cm: tuple[float, float]


TRANSRECTAL_PROSTATE = Preset(
    name="transrectal_prostate",
    probe=ProbeGeometry(kind="sector", depth_cm=5.0, radius_cm=0.8, half_angle_deg=45.0),
    speckle_axial_px=1.0,
    speckle_lateral_px=2.0,
    attenuation_db_per_cm=5.0,
    tgc_compensation=(0.55, 0.75),
    dynamic_range_db=50.0,
    tissue_display_level=0.62,
    noise_floor_db=-58.0,
    background_echogenicity=(0.8, 1.25),
    scatterer_density=(0.35, 1.0),
    gain_db=(-3.0, 3.0),
    texture_sigma=0.35,
    # The rectal wall against the probe: a bright mucosa line over a darker muscular layer.
    layers=(TissueLayer(0.0, 0.12, 3.0), TissueLayer(0.12, 0.45, 0.45)),
    organ_name="prostate",
    organ_semi_axes_cm=(1.9, 1.4),
    organ_depth_fraction=(0.45, 0.55),
    organ_lateral_fraction=0.12,
    organ_contrast=(0.04, 0.12),
    capsule_brightness=(2.5, 5.0),
    capsule_thickness_cm=0.2,
    organ_harmonics=(0.08, 0.10, 0.04),
    organ_core_fraction=0.55,
    organ_core_factor=(0.7, 1.2),
    vessel_count=(0, 2),
    vessel_radius_cm=(0.1, 0.25),
)

LINEAR_THYROID = Preset(
    name="linear_thyroid",
    probe=ProbeGeometry(kind="linear", depth_cm=4.0, width_cm=4.0),
    speckle_axial_px=0.5,
    speckle_lateral_px=0.7,
    attenuation_db_per_cm=7.0,
    tgc_compensation=(0.65, 0.8),
    dynamic_range_db=55.0,
    tissue_display_level=0.72,
    noise_floor_db=-60.0,
    background_echogenicity=(0.9, 1.4),
    scatterer_density=(0.6, 1.0),
    gain_db=(-2.0, 3.0),
    texture_sigma=0.25,
    # Skin, subcutaneous fat, then the hypoechoic strap muscles above the lobe.
    layers=(TissueLayer(0.0, 0.1, 2.5), TissueLayer(0.1, 0.35, 1.2), TissueLayer(0.35, 0.75, 0.45)),
    organ_name="thyroid lobe",
    organ_semi_axes_cm=(1.0, 0.75),
    organ_depth_fraction=(0.4, 0.55),
    organ_lateral_fraction=0.3,
    organ_contrast=(0.06, 0.16),
    capsule_brightness=(2.5, 4.0),
    capsule_thickness_cm=0.1,
    organ_harmonics=(0.10, 0.14, 0.05),
    organ_core_fraction=0.0,
    organ_core_factor=(1.0, 1.0),
    # The carotid artery and jugular vein beside the lobe: dark, round, not the organ.
    vessel_count=(1, 2),
    vessel_radius_cm=(0.25, 0.4),
)

CURVILINEAR_ABDOMEN = Preset(
    name="curvilinear_abdomen",
    probe=ProbeGeometry(kind="sector", depth_cm=16.0, radius_cm=4.0, half_angle_deg=38.0),
    speckle_axial_px=1.3,
    speckle_lateral_px=2.3,
    attenuation_db_per_cm=3.2,
    tgc_compensation=(0.6, 0.8),
    dynamic_range_db=50.0,
    tissue_display_level=0.62,
    noise_floor_db=-68.0,
    background_echogenicity=(0.7, 1.1),
    scatterer_density=(0.5, 1.0),
    gain_db=(-3.0, 2.0),
    texture_sigma=0.45,
    # Abdominal wall: skin, fat, muscle.
    layers=(TissueLayer(0.0, 0.3, 2.0), TissueLayer(0.3, 1.5, 0.8), TissueLayer(1.5, 2.4, 0.5)),
    organ_name="kidney",
    organ_semi_axes_cm=(4.5, 2.5),
    organ_depth_fraction=(0.45, 0.55),
    organ_lateral_fraction=0.2,
    organ_contrast=(0.05, 0.14),
    capsule_brightness=(3.0, 6.0),
    capsule_thickness_cm=0.35,
    organ_harmonics=(0.05, 0.06, 0.03),
    # The renal sinus: a bright fatty centre inside the darker cortex.
    organ_core_fraction=0.4,
    organ_core_factor=(1.8, 2.6),
    vessel_count=(0, 2),
    vessel_radius_cm=(0.4, 0.8),
)

# Held out from every tuning decision (docs/simulator.md, "Benchmark settings"): a wide, shallow linear
# array over a small, irregular, superficial lesion with a faint rim and no core, unlike the three above.
LINEAR_BREAST = Preset(
    name="linear_breast",
    probe=ProbeGeometry(kind="linear", depth_cm=3.0, width_cm=5.0),
    speckle_axial_px=0.6,
    speckle_lateral_px=1.1,
    attenuation_db_per_cm=8.0,
    tgc_compensation=(0.6, 0.8),
    dynamic_range_db=60.0,
    tissue_display_level=0.66,
    noise_floor_db=-62.0,
    background_echogenicity=(0.8, 1.3),
    scatterer_density=(0.5, 0.9),
    gain_db=(-2.0, 2.0),
    texture_sigma=0.5,
    # Skin, hypoechoic subcutaneous fat, then bright fibroglandular tissue.
    layers=(TissueLayer(0.0, 0.08, 2.8), TissueLayer(0.08, 0.6, 0.55), TissueLayer(0.6, 1.1, 1.5)),
    organ_name="breast lesion",
    organ_semi_axes_cm=(0.75, 0.45),
    organ_depth_fraction=(0.45, 0.6),
    organ_lateral_fraction=0.4,
    organ_contrast=(0.05, 0.15),
    capsule_brightness=(1.3, 2.0),
    capsule_thickness_cm=0.05,
    # Irregular margins: stronger low-order harmonics than any development preset.
    organ_harmonics=(0.14, 0.16, 0.08),
    organ_core_fraction=0.0,
    organ_core_factor=(1.0, 1.0),
    # Anechoic cysts: dark and round, not the lesion.
    vessel_count=(0, 3),
    vessel_radius_cm=(0.1, 0.25),
)

# The development presets: what `all` cycles through and what every tuning decision may look at.
DEVELOPMENT_PRESETS: tuple[Preset, ...] = (TRANSRECTAL_PROSTATE, LINEAR_THYROID, CURVILINEAR_ABDOMEN)
PRESET_NAMES: tuple[str, ...] = tuple(p.name for p in DEVELOPMENT_PRESETS)
HELD_OUT_PRESET_NAMES: tuple[str, ...] = (LINEAR_BREAST.name,)
PRESETS: dict[str, Preset] = {p.name: p for p in (*DEVELOPMENT_PRESETS, LINEAR_BREAST)}
ALL_PRESETS = "all"


def get_preset(name: str) -> Preset:
    """The preset called `name`; a clear error listing the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def preset_for_subject(preset: str, subject_index: int) -> Preset:
    """The preset of one subject: `all` cycles through the presets so each gets an even share of subjects."""
    if preset == ALL_PRESETS:
        return PRESETS[PRESET_NAMES[subject_index % len(PRESET_NAMES)]]
    return get_preset(preset)
