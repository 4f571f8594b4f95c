"""The state of one frame while it is simulated: what degradations read and change, stage by stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usqa.service.simulator.anatomy import OrganSection, SubjectProfile, Vessel
from usqa.service.simulator.scan import ScanConverter


@dataclass
class FrameState:
    """One frame in the making.

    Stages fill it in order: anatomy (`organ`, `vessels`), beam space (`echogenicity` and the acquisition
    channel: `transmission`, `gain_db`, `extra_noise_db`, `clutter`), then screen space (`image`,
    `blur_length_px`). A degradation changes the fields of its own stage.
    """

    subject: SubjectProfile
    scan: ScanConverter
    sweep_position: float
    organ: OrganSection | None
    vessels: tuple[Vessel, ...]
    gain_db: float
    # Beam space (n_depth x n_lines): tissue echogenicity, the share of the echo that gets through
    # (shadows, lost contact; None = all of it) and coherent clutter amplitude added after TGC
    # (reverberation), relative to average tissue.
    echogenicity: np.ndarray | None = None
    transmission: np.ndarray | None = None
    clutter: np.ndarray | None = None
    # Electronic noise above the preset's floor (dB).
    extra_noise_db: float = 0.0
    # Screen space: the scan-converted frame, and how far it was smeared by motion.
    image: np.ndarray | None = None
    blur_length_px: float = 0.0

    @property
    def beam_shape(self) -> tuple[int, int]:
        return self.scan.n_depth, self.scan.n_lines

    def transmission_or_ones(self) -> np.ndarray:
        if self.transmission is None:
            self.transmission = np.ones(self.beam_shape, np.float32)
        return self.transmission

    def clutter_or_zeros(self) -> np.ndarray:
        if self.clutter is None:
            self.clutter = np.zeros(self.beam_shape, np.float32)
        return self.clutter
