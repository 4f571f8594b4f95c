"""`usqa export`: a training run -> checked ONNX graphs + manifest -> a new version in the model registry.

Nothing is published unless every check passes: `onnx.checker`, onnxruntime-vs-torch parity on real frames
from the run's data (fp32: max abs difference <= 1e-4), and, with `--quantize int8`, a task-metric change within
tolerance. A run whose verdict failed (usqa.trainer.amenability.acceptance: a predictor no better than the trivial one, a controller
with no spread or a kappa <= 0 on labelled validation frames) is refused unless `force`; the verdict and whether
it was forced go into the manifest's metrics. Thresholds for target rejection rates and the validation score histogram are calibrated here on the
validation split, so the service serves exactly what the manifest says.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from usqa.contracts.graphs import (
    CONTROLLER_FILE,
    GRAPH_FILES,
    INPUT_DTYPE,
    INPUT_NAME,
    OUTPUT_BY_ROLE,
    PREDICTOR_FILE,
    Role,
    int8_file,
)
from usqa.contracts.training import TrainConfig
from usqa.service.datasets import load_dataset
from usqa.service.inference.capacity import measure_frame_cost
from usqa.service.inference.evaluation import evaluate, run_in_batches
from usqa.service.inference.graph_file import open_graphs, run_graph_file
from usqa.service.registry import InputSpec, Manifest, ModelRegistry, ModelVersion, ScoreHistogram
from usqa.trainer.amenability.acceptance import compute_verdict, refusal
from usqa.trainer.amenability.rejection_report import DEFAULT_TARGET, CertificationTarget
from usqa.trainer.amenability.run import load_run
from usqa.trainer.amenability.run_folder import evaluation_report, read_verdict, recorded_data_dir
from usqa.trainer.data import amenability, load_task_data, reward_mask, split_tensors
from usqa.trainer.release.card_builder import write_model_card
from usqa.trainer.release.fitting import KappaError, calibrate_scope, check_kappa, check_ood_parity, fit_ood
from usqa.trainer.release.graphs import export_graph, torch_outputs
from usqa.trainer.release.quantize import quantize_int8
from usqa.trainer.release.served_rejection import served_rejection
from usqa.trainer.release.weights_file import WEIGHTS_FILE, save_weights

log = logging.getLogger(__name__)

REJECTION_RATES: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20)
HISTOGRAM_BINS = 20

MSG_PARITY = "{role}: onnxruntime and torch differ by {diff:.2e} (> {atol:.0e}) on real frames; not published"
MSG_QUANT_DROP = (
    "int8 {role} changes the {metric} by {drop:+.4f} (tolerance {tolerance}); not published (use fp32 or raise "
    "--quantization-tolerance)"
)
MSG_NO_DATA = "the run does not record its data set: pass --data DIR (the folder it was trained on)"
MSG_NO_VAL = "the data set has no validation frames to calibrate the thresholds on"


class ExportError(ValueError):
    """A run that cannot be exported or a check that failed; nothing was published."""


@dataclass(frozen=True)
class ExportOptions:
    name: str = "usqa"
    quantize: Literal["int8"] | None = None
    parity_atol: float = 1e-4
    quantization_tolerance: float = 0.02
    parity_frames: int = 64
    calibration_frames: int = 128
    class_names: tuple[str, ...] | None = None
    alias: str | None = None
    rejection_rates: tuple[float, ...] = REJECTION_RATES
    # Retraining jobs: the job that publishes (at most one version per job) and its data-set id.
    job_id: str | None = None
    dataset: str | None = None
    # Publish even when the run's verdict failed or its holdout kappa is <= 0 (recorded as forced).
    force: bool = False
    # The certified pass line's alpha and delta, and a forced served rejector (issue #25).
    target: CertificationTarget = DEFAULT_TARGET


@dataclass
class ExportChecks:
    parity_max_abs_diff: dict[str, float] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    opencv_dnn: dict[str, str] = field(default_factory=dict)


def calibrate_thresholds(scores: np.ndarray, rates: Sequence[float]) -> dict[str, float]:
    """Score threshold per target rejection rate: frames scoring below it are the lowest `rate` fraction."""
    return {f"{rate:.2f}": float(np.quantile(scores, rate)) for rate in rates}


def score_histogram(scores: np.ndarray, bins: int = HISTOGRAM_BINS) -> ScoreHistogram:
    counts, edges = np.histogram(np.clip(scores, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return ScoreHistogram(edges=[round(float(e), 6) for e in edges], counts=[int(c) for c in counts])


def opencv_dnn_check(path: Path, frames: np.ndarray, reference: np.ndarray) -> str:
    """Does a second runtime (OpenCV DNN) load the graph and agree? A sentence for the manifest."""
    import cv2

    try:
        net = cv2.dnn.readNetFromONNX(str(path))
        net.setInput(np.ascontiguousarray(frames[:4, None]), INPUT_NAME)
        out = np.asarray(net.forward()).reshape(reference[:4].shape)
    except cv2.error as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return f"does not load in OpenCV {cv2.__version__} DNN: {first_line[:300]}"
    diff = float(np.abs(out - reference[:4]).max())
    return f"loads in OpenCV {cv2.__version__} DNN; max abs difference {diff:.2e}"


def code_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{'+dirty' if dirty else ''}"


def _check_parity(network: nn.Module, role: Role, path: Path, frames: np.ndarray, atol: float) -> float:
    (served,) = run_graph_file(path, frames, [OUTPUT_BY_ROLE[role]])
    diff = float(np.abs(served - torch_outputs(network, role, frames)).max())
    if diff > atol:
        raise ExportError(MSG_PARITY.format(role=role, diff=diff, atol=atol))
    return diff


def export_run(
    run_dir: Path | str,
    registry: ModelRegistry,
    options: ExportOptions = ExportOptions(),
    *,
    data_dir: Path | str | None = None,
) -> ModelVersion:
    """Export a run's controller and predictor, check them, calibrate, and publish one registry version."""
    run_dir = Path(run_dir)
    try:
        check_kappa(run_dir, force=options.force)
    except KappaError as exc:
        raise ExportError(str(exc)) from exc
    config, controller, predictor, _ = load_run(run_dir)
    data_path = Path(data_dir) if data_dir is not None else recorded_data_dir(run_dir)
    if data_path is None:
        raise ExportError(MSG_NO_DATA)
    verdict = run_verdict(run_dir, data_path)
    message = refusal(verdict, "export", job=options.job_id is not None)
    if message is not None and not options.force:
        raise ExportError(message)
    if message is not None:
        log.warning("publishing despite a failed verdict (forced): %s", message)
    dataset = load_dataset(data_path)
    spec = config.frame
    val = dataset.arrays("val", spec)
    if len(val.images) == 0:
        raise ExportError(MSG_NO_VAL)
    train = dataset.arrays("train", spec)
    rng = np.random.default_rng(config.seed)
    parity = val.images[rng.permutation(len(val.images))[: options.parity_frames]]
    predictor_role: Role = "classifier" if config.task == "classify" else "segmenter"
    checks = ExportChecks()
    ood = fit_ood(predictor, train.images, config.seed)  # the out-of-scope check, baked into the predictor

    with tempfile.TemporaryDirectory(prefix="usqa-export-") as tmp:
        out = Path(tmp)
        graphs = {
            "controller": (
                controller,
                "controller",
                export_graph(controller, "controller", out / CONTROLLER_FILE, spec.size),
            ),
            "predictor": (
                predictor,
                predictor_role,
                export_graph(predictor, predictor_role, out / PREDICTOR_FILE, spec.size, ood.constants),
            ),
        }
        for key, (network, role, path) in graphs.items():
            checks.parity_max_abs_diff[key] = _check_parity(network, role, path, parity, options.parity_atol)
            (reference,) = run_graph_file(path, parity[:4], [OUTPUT_BY_ROLE[role]])
            checks.opencv_dnn[key] = opencv_dnn_check(path, parity, reference)
        reference_ood = torch_outputs(predictor, predictor_role, parity, ood=ood.constants, output=1)
        try:
            checks.parity_max_abs_diff["ood_distance"] = check_ood_parity(
                out / PREDICTOR_FILE, reference_ood, parity
            )
        except ValueError as exc:
            raise ExportError(str(exc)) from exc

        files = {CONTROLLER_FILE: out / CONTROLLER_FILE, PREDICTOR_FILE: out / PREDICTOR_FILE}
        if options.quantize == "int8":
            calibration = train.images[rng.permutation(len(train.images))[: options.calibration_frames]]
            files = _quantize_and_gate(files, config, calibration, val, out, options, checks)

        task = "classify" if config.task == "classify" else "segment"
        holdout = dataset.arrays("holdout", spec)
        reward = reward_mask(split_tensors(dataset, "val", config, val), config, val.frames)
        rejection = served_rejection(files, task, val, holdout, options.target, config.seed, reward)
        served = open_graphs(files[CONTROLLER_FILE], files[PREDICTOR_FILE], task, rejector=rejection.spec())
        val_scores = run_in_batches(served, val.images).scores  # the served rejector's, as the service scores
        # What a frame costs an inference worker on this machine (one thread): the service's first capacity figure.
        worker = open_graphs(
            files[CONTROLLER_FILE], files[PREDICTOR_FILE], task, rejector=rejection.spec(), intra_op_threads=1
        )
        cost = measure_frame_cost(worker.run, val.images[: options.parity_frames], spec)
        labels = np.array([amenability(r, config.task) for r in dataset.split("val")], np.int8)
        scope = calibrate_scope(val_scores, labels, files[PREDICTOR_FILE], val.images, ood)
        display = scope.calibration.model_copy(
            update={
                "display_scale": "p_correct",
                "correct_x": rejection.correct_x,
                "correct_y": rejection.correct_y,
                "correct_ece": rejection.ece,
                "reliability": rejection.reliability,
            }
        )
        manifest = Manifest(
            schema_version=3,
            name=options.name,
            task="classify" if config.task == "classify" else "segment",
            class_names=list(options.class_names or [str(i) for i in range(config.num_classes)]),
            input=InputSpec(name=INPUT_NAME, shape=("N", 1, spec.size, spec.size), dtype=INPUT_DTYPE),
            preprocessing=spec.to_dict(),
            graphs=dict(GRAPH_FILES),
            thresholds=calibrate_thresholds(val_scores, options.rejection_rates),
            score_histogram=score_histogram(val_scores),
            calibration=display,
            ood=scope.ood,
            drift_reference=scope.drift_reference,
            rejector=rejection.spec(),
            certification=rejection.certification,
            cost=cost,
            metrics={**_run_metrics(run_dir, checks), "verdict": {**verdict, "forced": message is not None}},
            training_config=config.to_dict(),
            code_revision=code_revision(),
            quantization=options.quantize,
            job_id=options.job_id,
            dataset=options.dataset,
        )
        # The torch weights beside the graphs: what `usqa adapt` starts from (covered by the sha256 checks).
        files[WEIGHTS_FILE] = save_weights(out / WEIGHTS_FILE, predictor, controller)
        files |= write_model_card(out, manifest, run_dir=run_dir, data_dir=data_path, registry=registry.root)
        return registry.publish(manifest, files, alias=options.alias)


def run_verdict(run_dir: Path, data_path: Path) -> dict[str, Any]:
    """The run's verdict.json; for a run from before verdicts, computed now on the data set's validation split."""
    recorded = read_verdict(run_dir)
    if recorded is not None:
        return recorded
    config, controller, predictor, baseline = load_run(run_dir)
    data = load_task_data(data_path, config)
    return compute_verdict(config, controller, predictor, baseline, data.train, data.val).to_dict()


def _quantize_and_gate(
    files: dict[str, Path],
    config: TrainConfig,
    calibration: np.ndarray,
    val: Any,
    out: Path,
    options: ExportOptions,
    checks: ExportChecks,
) -> dict[str, Path]:
    quantized: dict[str, Path] = {}
    for file, path in files.items():
        target = out / int8_file(file)
        quantize_int8(path, target, calibration)
        quantized[file] = target
    task = "classify" if config.task == "classify" else "segment"
    fp32, int8 = (
        evaluate(
            open_graphs(graphs[CONTROLLER_FILE], graphs[PREDICTOR_FILE], task),
            val.images,
            val.labels,
            val.masks,
        )
        for graphs in (files, quantized)
    )
    metric = fp32.metric_name
    drop = int8.mean - fp32.mean
    score_shift = float(np.abs(int8.scores - fp32.scores).mean())
    checks.quantization = {"metric": metric, "change": drop, "controller_mean_abs_score_change": score_shift}
    if drop < -options.quantization_tolerance:
        raise ExportError(
            MSG_QUANT_DROP.format(
                role="predictor", metric=metric, drop=drop, tolerance=options.quantization_tolerance
            )
        )
    # The registry stores the int8 graphs under the contract's file names.
    return {CONTROLLER_FILE: quantized[CONTROLLER_FILE], PREDICTOR_FILE: quantized[PREDICTOR_FILE]}


def _run_metrics(run_dir: Path, checks: ExportChecks) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "parity_max_abs_diff": checks.parity_max_abs_diff,
        "opencv_dnn": checks.opencv_dnn,
    }
    if checks.quantization:
        metrics["quantization"] = checks.quantization
    report = evaluation_report(run_dir)
    if report is not None:
        metrics["evaluation"] = {
            k: report[k]
            for k in (
                "task",
                "metric",
                "operating_point",
                "kappa",
                "non_amenable_fraction",
                "kappa_at_prevalence",
            )
            if k in report
        }
    return metrics
