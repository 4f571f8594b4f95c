"""Sweeps: one subject's frames as a cine, with degradation episodes, rendered frame by frame.

Every random draw comes from a generator seeded by (seed, subject, purpose[, index]) through
`np.random.SeedSequence(seed, spawn_key=...)`, never from a shared stream, so any frame can be rendered
alone, in any order, by any worker, and come out byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from usqa.service.simulator.acoustics import (
    acquire,
    build_echogenicity,
    channel_visibility,
    organ_contrast_map,
    organ_screen_mask,
)
from usqa.service.simulator.anatomy import SubjectProfile, draw_subject
from usqa.service.simulator.degradations import DEGRADATIONS, NO_DEGRADATION, Stage
from usqa.service.simulator.ground_truth import OrganOutline, judge_amenability
from usqa.service.simulator.mixes import STANDARD, DegradationMix, get_mix
from usqa.service.simulator.presets import ALL_PRESETS, preset_for_subject
from usqa.service.simulator.scan import ScanConverter, scan_converter
from usqa.service.simulator.state import FrameState

# Mean length (frames) of a run of clean or degraded frames: artefacts come and go in episodes.
MEAN_EPISODE_FRAMES = 4.0
DEFAULT_DEGRADED_FRACTION = 0.35


class Stream(IntEnum):
    """What a generator is for; part of its seed so streams never overlap."""

    SUBJECT = 0
    EPISODES = 1
    SPECKLE = 2
    DEGRADATION = 3


def generator(seed: int, subject_index: int, stream: Stream, index: int = 0) -> np.random.Generator:
    """The generator for one purpose of one subject (and one frame or episode)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(subject_index, int(stream), index)))


def subject_name(subject_index: int) -> str:
    return f"s{subject_index:03d}"


@dataclass(frozen=True)
class Episode:
    """Consecutive frames sharing a degradation (or none), a severity and a placement (`index` seeds it)."""

    start: int
    stop: int
    kind: str
    severity: float
    index: int


@dataclass(frozen=True)
class SimulatedFrame:
    """One simulated frame with its labels and ground truth."""

    image: np.ndarray
    mask: np.ndarray
    label: int
    amenable: int
    amenable_seg: int
    degradation: str
    severity: float
    preset: str
    subject: str
    sweep_index: int
    visibility: np.ndarray


@dataclass(frozen=True)
class SubjectSweep:
    """Everything needed to render any frame of one subject's sweep."""

    seed: int
    subject_index: int
    n_frames: int
    profile: SubjectProfile
    scan: ScanConverter
    episodes: tuple[Episode, ...]

    def sweep_position(self, frame: int) -> float:
        return (frame + 0.5) / self.n_frames

    def state_at(self, frame: int) -> FrameState:
        """A fresh frame state (anatomy only) at frame `frame` of the sweep."""
        t = self.sweep_position(frame)
        return FrameState(
            subject=self.profile,
            scan=self.scan,
            sweep_position=t,
            organ=self.profile.organ_at(t),
            vessels=self.profile.vessels_at(t),
            gain_db=self.profile.gain_db,
        )

    def widest_frame(self) -> int:
        """The frame where the image plane cuts the organ at its widest."""
        return min(self.n_frames - 1, max(0, round(self.profile.sweep_centre * self.n_frames - 0.5)))

    def episode_of(self, frame: int) -> Episode:
        for episode in self.episodes:
            if episode.start <= frame < episode.stop:
                return episode
        raise IndexError(f"frame {frame} is outside the sweep of {self.n_frames} frames")


def plan_episodes(
    rng: np.random.Generator,
    profile: SubjectProfile,
    n_frames: int,
    degraded_fraction: float,
    mix: DegradationMix = STANDARD,
) -> tuple[Episode, ...]:
    """Alternate clean and degraded runs; each run is degraded with probability `degraded_fraction`.

    A degraded run's kind and severity come from `mix`.

    Runs of both kinds have the same mean length, so the expected share of degraded frames is exactly
    `degraded_fraction`. A partial view needs the organ, so its frames that miss the organ stay clean.
    """
    episodes: list[Episode] = []
    start = 0
    while start < n_frames:
        length = int(rng.geometric(1 / MEAN_EPISODE_FRAMES))
        stop = min(n_frames, start + length)
        degraded = rng.random() < degraded_fraction
        kind, severity = mix.draw(rng)
        if not degraded:
            episodes.append(Episode(start, stop, NO_DEGRADATION, 0.0, len(episodes)))
        elif DEGRADATIONS[kind].needs_organ:
            # Frame by frame (some may miss the organ), all under the run's index: one placement.
            index = len(episodes)
            for frame in range(start, stop):
                has_organ = profile.organ_scale((frame + 0.5) / n_frames) > 0
                run_kind, run_severity = (kind, severity) if has_organ else (NO_DEGRADATION, 0.0)
                episodes.append(Episode(frame, frame + 1, run_kind, run_severity, index))
        else:
            episodes.append(Episode(start, stop, kind, severity, len(episodes)))
        start = stop
    return tuple(episodes)


def subject_sweep(
    seed: int,
    preset: str,
    subject_index: int,
    n_frames: int,
    size: int,
    degraded_fraction: float,
    mix: str = STANDARD.name,
) -> SubjectSweep:
    """Draw one subject and plan their sweep of `n_frames` frames (degradations drawn from `mix`)."""
    if not 0.0 <= degraded_fraction <= 1.0:
        raise ValueError(f"degraded fraction must be in [0, 1], got {degraded_fraction}")
    chosen = preset_for_subject(preset, subject_index)
    scan = scan_converter(chosen.probe, size)
    profile = draw_subject(
        subject_name(subject_index), chosen, scan, generator(seed, subject_index, Stream.SUBJECT)
    )
    episodes = plan_episodes(
        generator(seed, subject_index, Stream.EPISODES), profile, n_frames, degraded_fraction, get_mix(mix)
    )
    return SubjectSweep(seed, subject_index, n_frames, profile, scan, episodes)


def organ_outline(state: FrameState) -> OrganOutline | None:
    """The organ of a frame sampled in screen pixels for the ground-truth rules; None without an organ."""
    organ, scan = state.organ, state.scan
    if organ is None:
        return None
    ax, ay, weights, rho = organ.area_points()
    area_cols, area_rows = scan.to_pixels(ax, ay)
    bx, by, boundary_weights = organ.boundary_points()
    boundary_cols, boundary_rows = scan.to_pixels(bx, by)
    return OrganOutline(
        area_cols=area_cols,
        area_rows=area_rows,
        area_weights=weights,
        area_rho=rho,
        boundary_cols=boundary_cols,
        boundary_rows=boundary_rows,
        boundary_weights=boundary_weights,
        equivalent_radius_px=organ.equivalent_radius_cm * scan.px_per_cm,
    )


def render_frame(sweep: SubjectSweep, frame: int, episode: Episode | None = None) -> SimulatedFrame:
    """Render frame `frame` of a sweep, with its mask and ground truth.

    `episode` overrides the planned degradation (figures and tests show one kind at chosen severities).
    """
    profile, scan = sweep.profile, sweep.scan
    episode = episode if episode is not None else sweep.episode_of(frame)
    state = sweep.state_at(frame)
    degradation = DEGRADATIONS.get(episode.kind)
    degradation_visibility: np.ndarray | None = None

    def degrade(stage: Stage) -> None:
        nonlocal degradation_visibility
        if degradation is not None and degradation.stage is stage:
            # The episode's generator is made afresh for each frame: placement holds still through it.
            rng = generator(sweep.seed, sweep.subject_index, Stream.DEGRADATION, episode.index)
            degradation_visibility = degradation.apply(rng, state, episode.severity)

    degrade(Stage.ANATOMY)
    build_echogenicity(state)
    degrade(Stage.BEAM)
    beam = acquire(state, generator(sweep.seed, sweep.subject_index, Stream.SPECKLE, frame))
    state.image = scan.to_screen(beam)
    degrade(Stage.SCREEN)

    visibility = channel_visibility(state)
    if degradation_visibility is not None:
        visibility = np.minimum(visibility, degradation_visibility)
    mask = organ_screen_mask(scan, state.organ)
    # The label follows the mask: an organ cut down to nothing on screen is an absent organ.
    outline = organ_outline(state) if mask.any() else None
    judged = judge_amenability(
        visibility,
        scan.fan,
        outline,
        organ_contrast_map(state) if outline is not None else None,
        state.blur_length_px,
    )
    assert state.image is not None
    return SimulatedFrame(
        image=state.image,
        mask=mask,
        label=int(outline is not None),
        amenable=int(judged.classification),
        amenable_seg=int(judged.segmentation),
        degradation=episode.kind,
        severity=episode.severity,
        preset=profile.preset.name,
        subject=profile.name,
        sweep_index=frame,
        visibility=visibility,
    )


def simulate_cine(
    preset: str,
    n_frames: int,
    *,
    seed: int,
    size: int = 128,
    degraded_fraction: float = DEFAULT_DEGRADED_FRACTION,
    subject_index: int = 0,
    mix: str = STANDARD.name,
) -> Iterator[SimulatedFrame]:
    """One subject's sweep through the organ, frame by frame, for the live page and demos.

    Arguments are checked at the call; frames are rendered as they are taken (about 3 ms each at 128 px).
    The same arguments always give the same frames; `subject_index` picks another subject.
    """
    if preset == ALL_PRESETS:
        raise ValueError("a cine shows one subject, so it needs one preset, not 'all'")
    if n_frames < 1:
        raise ValueError(f"a cine needs at least one frame, got {n_frames}")
    sweep = subject_sweep(seed, preset, subject_index, n_frames, size, degraded_fraction, mix)
    return (render_frame(sweep, frame) for frame in range(n_frames))
