"""From bytes to scored frames: one job per upload, decoded, prepared, run and judged in an inference worker.

`FrameScorer` is what /assess and /ws/scan call; `score_outputs` is the pure last step, shared with the
offline scorer, so a frame gets the same verdict wherever it is scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import numpy as np

from usqa.contracts.frames import FrameSpec
from usqa.service.frames import FrameError, TooManyFramesError, decode_bytes, sniff_format
from usqa.service.frames.decode import declared_image_size
from usqa.service.frames.headers import SNIFF_LENGTH
from usqa.service.frames.lane import DecodeLane, DecodeLaneFullError
from usqa.service.inference.batch_job import BatchTiming, InferenceJob
from usqa.service.inference.batcher import InferenceQueue, QueueFullError
from usqa.service.inference.geometry import PreparedFrame, prepare_with_geometry, stack_pixels
from usqa.service.inference.model import LoadedModel, ModelOutputs
from usqa.service.inference.predictions import Prediction, classify, segment
from usqa.service.inference.verdict import DEFAULT_LIMITS, FrameSignal, FrameVerdict, SignalLimits, judge

MSG_ONE_FRAME_PER_MESSAGE = "one frame per message: this message holds {count} frames"


@dataclass(frozen=True)
class ScoringOptions:
    mask_png: bool = False  # segmentation: the mask itself, as a PNG the size of the source frame
    outline: bool = False  # segmentation: mask outlines as polygons in source pixels


@dataclass(frozen=True)
class ScoredFrame:
    index: int
    score: float  # the served rejector's raw score (the controller's unless the manifest serves another)
    threshold: float  # raw: the certified line, or the one at the served target rejection
    prediction: Prediction
    signal: FrameSignal
    display_score: float  # on the version's display scale (usqa/service/inference/calibration.py)
    display_threshold: float
    verdict: FrameVerdict
    p_amenable: float | None = None
    ood_distance: float | None = None
    # The prepared frame the graphs saw (a reference, not a copy): auto-capture compares pictures by it.
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def amenable(self) -> bool:
        """Good to use: in scope, with signal, at or above the threshold (the verdict is `good`)."""
        return self.verdict.amenable

    @property
    def mean_level(self) -> float:
        return self.signal.mean_level

    @property
    def std_level(self) -> float:
        return self.signal.std_level


@dataclass(frozen=True)
class ScoredBatch:
    model: LoadedModel
    frames: list[ScoredFrame]
    timing: BatchTiming  # prepare_s is the decoding and preparation of this upload


@dataclass(frozen=True)
class DecodedInput:
    frames: list[PreparedFrame]
    decode_s: float


class SingleFrameError(FrameError):
    """A stream message that holds several frames (a multi-frame DICOM): streams send one frame per message."""

    code: ClassVar[str] = "multi_frame_message"


def score_outputs(
    model: LoadedModel, outputs: ModelOutputs, prepared: list[PreparedFrame], options: ScoringOptions
) -> list[ScoredFrame]:
    """Verdicts for a batch (`verdict.judge`): the served rejector's score against the version's pass line."""
    scale = model.scale
    scored = []
    for i, frame in enumerate(prepared):
        score = float(outputs.scores[i])
        display = scale.display(score)
        distance = None if outputs.ood_distance is None else float(outputs.ood_distance[i])
        prediction: Prediction
        if outputs.probabilities is not None:
            prediction = classify(outputs.probabilities[i], model.class_names)
        else:
            assert outputs.mask_probability is not None
            prediction = segment(
                outputs.mask_probability[i], frame.geometry, outline=options.outline, png=options.mask_png
            )
        verdict = judge(
            frame.signal,
            score=score,
            threshold=model.threshold,
            ood_distance=distance,
            ood_threshold=scale.ood_threshold,
        )
        scored.append(
            ScoredFrame(
                index=i,
                score=score,
                threshold=model.threshold,
                prediction=prediction,
                signal=frame.signal,
                display_score=display,
                display_threshold=scale.display_threshold,
                verdict=verdict,
                p_amenable=scale.p_amenable(score),
                ood_distance=distance,
                pixels=frame.pixels,
            )
        )
    return scored


def decode_for_spec(
    spec: FrameSpec,
    data: bytes,
    media_type: str | None,
    *,
    width: int | None,
    height: int | None,
    max_pixels: int,
    max_frames: int,
    max_decoded_pixels: int | None = None,
    limits: SignalLimits = DEFAULT_LIMITS,
    max_decode_s: float | None = None,
) -> DecodedInput:
    """Decode an upload once and prepare every frame for `spec` (in a worker thread, or in the decode lane's
    process: everything it takes pickles)."""
    started = time.perf_counter()
    images = decode_bytes(
        data,
        media_type,
        width=width,
        height=height,
        max_pixels=max_pixels,
        max_frames=max_frames,
        max_decoded_pixels=max_decoded_pixels,
        max_decode_s=max_decode_s,
        input_size=spec.size,
    )
    # A JPEG may have been decoded at a reduced scale: geometry maps back to the frame as the client has it.
    source = declared_image_size(data) if len(images) == 1 and width is None else None
    prepared = [prepare_with_geometry(image, spec, limits, source_size=source) for image in images]
    return DecodedInput(frames=prepared, decode_s=time.perf_counter() - started)


class UploadJob(InferenceJob[list[ScoredFrame]]):
    """An upload's bytes: decoded and prepared in the worker, judged after the batch run."""

    def __init__(
        self,
        model: LoadedModel,
        data: bytes,
        media_type: str | None,
        options: ScoringOptions,
        *,
        width: int | None,
        height: int | None,
        max_pixels: int,
        max_frames: int,
        single_frame: bool,
        limits: SignalLimits,
        max_decoded_pixels: int | None = None,
        decoded: DecodedInput | None = None,
    ) -> None:
        self.model = model
        self.limits = limits
        # Decoded already (in the decode lane, usqa/service/frames/lane.py): the worker only runs the graphs.
        self.decoded = decoded
        if decoded is not None:
            self.frame_hint = len(decoded.frames)
        self.data = data
        self.media_type = media_type
        self.options = options
        self.width = width
        self.height = height
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.max_decoded_pixels = max_decoded_pixels
        self.single_frame = single_frame
        # A stream frame, decoded here: the event loop may run it (`InferenceQueue.frames_on_loop`).
        self.fits_loop = single_frame and decoded is None
        self.prepared: list[PreparedFrame] = []

    def prepare(self) -> np.ndarray:
        if self.decoded is not None:
            self.prepared = self.decoded.frames
            return stack_pixels(self.prepared)
        self.prepared = self._decode().frames
        return stack_pixels(self.prepared)

    def decode_again(self) -> None:
        if self.decoded is None:  # decoded in the decode lane: nothing of it runs in the worker
            self._decode()

    def finish_again(self, model: LoadedModel, outputs: ModelOutputs) -> None:
        score_outputs(model, outputs, self.prepared, self.options)  # no effect beyond its result

    def _decode(self) -> DecodedInput:
        # A stream message may hold one frame: counted by the decoder before any frame is decoded.
        try:
            decoded = decode_for_spec(
                self.model.spec,
                self.data,
                self.media_type,
                width=self.width,
                height=self.height,
                max_pixels=self.max_pixels,
                max_frames=1 if self.single_frame else self.max_frames,
                max_decoded_pixels=self.max_decoded_pixels,
                limits=self.limits,
            )
        except TooManyFramesError as exc:
            if not self.single_frame or exc.frames is None:
                raise
            raise SingleFrameError(MSG_ONE_FRAME_PER_MESSAGE.format(count=exc.frames)) from exc
        if self.single_frame and len(decoded.frames) != 1:
            raise SingleFrameError(MSG_ONE_FRAME_PER_MESSAGE.format(count=len(decoded.frames)))
        return decoded

    def finish(self, model: LoadedModel, outputs: ModelOutputs) -> list[ScoredFrame]:
        return score_outputs(model, outputs, self.prepared, self.options)


class FrameScorer:
    """Decode, prepare and score uploads for a model version; the logic behind /assess and /ws/scan."""

    def __init__(
        self,
        queue: InferenceQueue,
        *,
        max_pixels: int,
        max_frames: int,
        limits: SignalLimits = DEFAULT_LIMITS,
        max_decoded_pixels: int | None = None,
        lane: DecodeLane | None = None,
        max_decode_s: float | None = None,
    ) -> None:
        self.queue = queue
        self.limits = limits
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.max_decoded_pixels = max_decoded_pixels
        # DICOM uploads decode in the lane, within `max_decode_s`; images and stream frames in the workers.
        self.lane = lane
        self.max_decode_s = max_decode_s

    async def score(
        self,
        model: LoadedModel,
        data: bytes,
        media_type: str | None,
        options: ScoringOptions,
        *,
        width: int | None = None,
        height: int | None = None,
        single_frame: bool = False,
        admit_when_full: bool = False,
    ) -> ScoredBatch:
        """Score every frame of `data` on `model`; FrameError for input the pipeline refuses."""
        decoded = None
        # A DICOM (a cine, up to the whole decode budget) decodes in the lane; a single image costs what a
        # stream frame does and decodes in the workers like one.
        if self.lane is not None and not single_frame and sniff_format(data[:SNIFF_LENGTH]) == "dicom":
            work = partial(
                decode_for_spec,
                model.spec,
                data,
                media_type,
                width=width,
                height=height,
                max_pixels=self.max_pixels,
                max_frames=self.max_frames,
                max_decoded_pixels=self.max_decoded_pixels,
                limits=self.limits,
                max_decode_s=self.max_decode_s,
            )
            try:
                decoded = await self.lane.run(work)
            except DecodeLaneFullError as exc:
                raise QueueFullError(str(exc)) from exc
        job = UploadJob(
            model,
            data,
            media_type,
            options,
            width=width,
            height=height,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            single_frame=single_frame,
            limits=self.limits,
            max_decoded_pixels=self.max_decoded_pixels,
            decoded=decoded,
        )
        frames, timing = await self.queue.submit(model, job, admit_when_full=admit_when_full)
        return ScoredBatch(model=model, frames=frames, timing=timing)
