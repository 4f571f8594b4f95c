"""One registry version as ready-to-run onnxruntime sessions: the controller and the task predictor.

The graph contract the exporter writes and this module checks on load is `usqa.contracts.graphs`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from usqa.contracts.graphs import CONTROLLER, INPUT_DTYPE, INPUT_NAME, OUTPUT_BY_TASK, PREDICTOR, SCORE_OUTPUT
from usqa.service.frames import FrameSpec
from usqa.service.inference.calibration import MSG_UNCALIBRATED, ScoreScale, score_scale
from usqa.service.inference.providers import ProviderError, ProviderPlan, create_session
from usqa.service.inference.rejectors import rejector_scores
from usqa.service.registry import Manifest, ModelVersion, RejectorSpec

log = logging.getLogger(__name__)


MSG_NO_THRESHOLD = (
    "model {name!r} version {version} has no threshold for target rejection {target} "
    "(calibrated: {available}); set USQA_TARGET_REJECTION to one of them"
)
MSG_MISSING_GRAPH = "model {name!r} version {version}: the manifest names no {role!r} graph"
MSG_BAD_GRAPH = "model {name!r} version {version}: {role} graph does not follow the contract: {reason}"


class ModelLoadError(RuntimeError):
    """A registry version that cannot be served as it is (its files are fine, its contents are not)."""


@dataclass(frozen=True)
class ModelOutputs:
    """Raw graph outputs for a batch of N frames, and the served rejector's score of each."""

    scores: np.ndarray  # [N] the served rejector's score (the controller's when it is served)
    probabilities: np.ndarray | None = None  # float32 [N, C] (classify)
    mask_probability: np.ndarray | None = None  # float32 [N, S, S] (segment)
    ood_distance: np.ndarray | None = None  # float32 [N], when the manifest has an `ood` section
    controller_scores: np.ndarray | None = None  # float32 [N], when another rejector is served

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, start: int, stop: int) -> ModelOutputs:
        return ModelOutputs(
            scores=self.scores[start:stop],
            probabilities=None if self.probabilities is None else self.probabilities[start:stop],
            mask_probability=None if self.mask_probability is None else self.mask_probability[start:stop],
            ood_distance=None if self.ood_distance is None else self.ood_distance[start:stop],
            controller_scores=None if self.controller_scores is None else self.controller_scores[start:stop],
        )

    @property
    def controller(self) -> np.ndarray:
        """The paper's controller score of each frame, whichever rejector is served."""
        return self.scores if self.controller_scores is None else self.controller_scores


def concat_outputs(parts: list[ModelOutputs]) -> ModelOutputs:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return ModelOutputs(
        scores=np.concatenate([p.scores for p in parts]),
        probabilities=None
        if first.probabilities is None
        else np.concatenate([p.probabilities for p in parts if p.probabilities is not None]),
        mask_probability=None
        if first.mask_probability is None
        else np.concatenate([p.mask_probability for p in parts if p.mask_probability is not None]),
        ood_distance=None
        if first.ood_distance is None
        else np.concatenate([p.ood_distance for p in parts if p.ood_distance is not None]),
        controller_scores=None
        if first.controller_scores is None
        else np.concatenate([p.controller_scores for p in parts if p.controller_scores is not None]),
    )


def run_graphs(
    controller: ort.InferenceSession,
    predictor: ort.InferenceSession,
    task: str,
    frames: np.ndarray,
    ood_output: str | None = None,
    rejector: RejectorSpec | None = None,
) -> ModelOutputs:
    """The graph contract's one run: prepared frames, uint8 [N, S, S] (C-contiguous), through both graphs;
    `scores` is `rejector`'s (the controller's without one)."""
    batch = frames[:, None]  # [N, 1, S, S]: a view, no copy
    feed = {INPUT_NAME: batch}
    (scores,) = controller.run([SCORE_OUTPUT], feed)
    names = [OUTPUT_BY_TASK[task]]
    if ood_output is not None:
        names.append(ood_output)  # the same graph run: the features are already there
    predicted, *ood = predictor.run(names, feed)
    distance = ood[0] if ood else None
    task_output = predicted if task == "classify" else predicted[:, 0]
    controller_scores = None
    if rejector is not None and rejector.name != "controller":
        controller_scores = scores
        scores = rejector_scores(
            rejector.name,
            task,
            scores,
            task_output,
            temperature=rejector.temperature,
            weights=rejector.weights,
            bias=rejector.bias,
        )
    if task == "classify":
        return ModelOutputs(scores, task_output, None, distance, controller_scores)
    return ModelOutputs(scores, None, task_output, distance, controller_scores)


def threshold_for(manifest: Manifest, target_rejection: float) -> float:
    """The served rejector's pass line: the certified one when the manifest has it, else the threshold at
    `target_rejection` ("0.05" and 0.05 are the same key) calibrated on validation scores."""
    certification = manifest.certification
    if certification is not None and certification.certified and certification.threshold is not None:
        return float(certification.threshold)
    for key, value in manifest.thresholds.items():
        try:
            if abs(float(key) - target_rejection) < 1e-9:
                return float(value)
        except ValueError:
            continue
    raise ModelLoadError(
        MSG_NO_THRESHOLD.format(
            name=manifest.name,
            version=manifest.version,
            target=target_rejection,
            available=sorted(manifest.thresholds) or "none",
        )
    )


@dataclass
class LoadedModel:
    """A served version: its manifest, operating point, frame spec and sessions. Safe to run from threads."""

    version: ModelVersion
    spec: FrameSpec
    threshold: float
    target_rejection: float
    controller: ort.InferenceSession
    predictor: ort.InferenceSession
    provider: str
    scale: ScoreScale
    loaded_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> int:
        return self.version.version

    @property
    def manifest(self) -> Manifest:
        return self.version.manifest

    @property
    def task(self) -> str:
        return self.version.manifest.task

    @property
    def class_names(self) -> list[str]:
        return list(self.version.manifest.class_names)

    def run(self, frames: np.ndarray) -> ModelOutputs:
        """Score prepared frames, uint8 [N, S, S] (C-contiguous), with both graphs."""
        return run_graphs(
            self.controller, self.predictor, self.task, frames, self.scale.ood_output, self.manifest.rejector
        )

    def warm_up(self, runs: int, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run each batch size a few times so the first real frame does not pay for allocations."""
        rng = np.random.default_rng(0)
        for size in batch_sizes:
            frames = rng.integers(0, 256, (size, self.spec.size, self.spec.size), dtype=np.uint8)
            for _ in range(runs):
                self.run(frames)


def load_model(
    version: ModelVersion,
    *,
    target_rejection: float,
    providers: ProviderPlan,
    intra_op_threads: int,
    warmup_runs: int = 3,
    warmup_batch: int = 1,
) -> LoadedModel:
    """Sessions for a verified registry version, checked against the graph contract and warmed up."""
    manifest = version.manifest
    for role in (CONTROLLER, PREDICTOR):
        if role not in manifest.graphs:
            raise ModelLoadError(
                MSG_MISSING_GRAPH.format(name=version.name, version=version.version, role=role)
            )
    spec = FrameSpec.from_dict(manifest.preprocessing)
    threshold = threshold_for(manifest, target_rejection)
    controller = _open(version, CONTROLLER, providers, intra_op_threads)
    predictor = _open(version, PREDICTOR, providers, intra_op_threads)
    _check_contract(version, CONTROLLER, controller, SCORE_OUTPUT)
    _check_contract(version, PREDICTOR, predictor, OUTPUT_BY_TASK[manifest.task])
    scale = score_scale(manifest, threshold)
    if scale.ood_output is not None:
        _check_contract(version, PREDICTOR, predictor, scale.ood_output)
    if scale.fallback:
        log.warning(MSG_UNCALIBRATED.format(name=version.name, version=version.version))
    model = LoadedModel(
        version=version,
        spec=spec,
        threshold=threshold,
        target_rejection=target_rejection,
        controller=controller,
        predictor=predictor,
        provider=controller.get_providers()[0],
        scale=scale,
    )
    started = time.perf_counter()
    try:
        model.warm_up(warmup_runs, tuple(sorted({1, warmup_batch})))
    except Exception as exc:  # a graph that cannot run a frame is not a servable version
        raise ModelLoadError(
            MSG_BAD_GRAPH.format(
                name=version.name,
                version=version.version,
                role="the",
                reason=f"it fails on a test frame: {exc}",
            )
        ) from exc
    log.info(
        "loaded %s version %d (%s) on %s, threshold %.4f at target rejection %s (%.3f on the %s scale, "
        "out-of-scope check %s), warm-up %.0f ms",
        version.name,
        version.version,
        manifest.task,
        model.provider,
        threshold,
        target_rejection,
        scale.display_threshold,
        scale.scale,
        "off" if scale.ood_threshold is None else f"at distance {scale.ood_threshold:.3f}",
        (time.perf_counter() - started) * 1000,
    )
    return model


def _open(
    version: ModelVersion, role: str, providers: ProviderPlan, intra_op_threads: int
) -> ort.InferenceSession:
    try:
        return create_session(str(version.graph_path(role)), providers, intra_op_threads)
    except ProviderError:
        raise
    except Exception as exc:  # onnxruntime raises its own types for unreadable or invalid graphs
        raise ModelLoadError(
            MSG_BAD_GRAPH.format(name=version.name, version=version.version, role=role, reason=exc)
        ) from exc


def _check_contract(version: ModelVersion, role: str, session: ort.InferenceSession, output: str) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    reason = None
    if INPUT_NAME not in inputs:
        reason = f"no input named {INPUT_NAME!r} (inputs: {sorted(inputs)})"
    elif inputs[INPUT_NAME].type != f"tensor({INPUT_DTYPE})":
        reason = f"input {INPUT_NAME!r} is {inputs[INPUT_NAME].type}, not tensor({INPUT_DTYPE})"
    elif output not in outputs:
        reason = f"no output named {output!r} (outputs: {sorted(outputs)})"
    if reason is not None:
        raise ModelLoadError(
            MSG_BAD_GRAPH.format(name=version.name, version=version.version, role=role, reason=reason)
        )
