"""The rejection decision of a run (issue #25): every rejector on the same predictor, the served one, its
certified pass line and the display score's calibration. `usqa evaluate` makes it from the networks (for
report.json) and `usqa export` again from the served graphs (for the manifest), with the same functions.

report.json gains:
- `selective` rows `softmax` (temperature-scaled), `doctor` and `fused` beside the paper's `controller`,
  the plain softmax `confidence`, `labels` and `random`;
- `rejectors`: the fitted constants ({"temperature", "weights", "bias"}) and `validation_aurc` per rejector;
- `served_rejector`: {"name", "reason"}, the lowest validation AURC unless forced;
- `certification`: usqa/trainer/amenability/certification.py's section for the served rejector, calibrated on
  half the holdout's subjects and checked on the other half;
- `display`: P(right | served score) as breakpoints (`correct_x`, `correct_y`, fitted on the calibration half),
  and its expected calibration error and reliability diagram on the check half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from usqa.contracts.graphs import REJECTORS, RejectorName
from usqa.service.inference.model import ModelOutputs
from usqa.service.inference.selective import aurc, task_risk
from usqa.service.registry import Certification, RejectorSpec
from usqa.trainer.amenability.certification import (
    DEFAULT_ALPHA,
    DEFAULT_DELTA,
    calibration_subjects,
    candidate_lines,
    certify,
    correctness_calibration,
    expected_calibration_error,
)
from usqa.trainer.amenability.engine import frame_metric, infer
from usqa.trainer.amenability.rejector_fit import (
    RejectorFit,
    SplitOutputs,
    choose_served,
    fit_rejectors,
    margins_over_softmax,
    unseen_by_controller,
    validation_scores,
)
from usqa.trainer.data import SplitTensors

# The rejectors fitted here, added to the report's `selective` rows.
FITTED_ROWS: tuple[RejectorName, ...] = ("softmax", "expected_metric", "doctor", "fused")
DISPLAY_MEANING = "P(the task model is right on this frame | the served rejector's score)"


@dataclass(frozen=True)
class CertificationTarget:
    alpha: float | None = None  # None: the task's DEFAULT_ALPHA
    delta: float = DEFAULT_DELTA
    rejector: RejectorName | None = None  # forced served rejector; None: the lowest validation AURC


DEFAULT_TARGET = CertificationTarget()


@dataclass(frozen=True)
class Rejection:
    """What a run serves to reject frames, and what it promises."""

    fit: RejectorFit
    served: RejectorName
    reason: str
    validation_aurc: dict[str, float]
    certification: Certification
    correct_x: list[float]
    correct_y: list[float]
    ece: float | None
    reliability: list[dict[str, float]]
    check_frames: int
    holdout_scores: dict[str, np.ndarray]  # the fitted rows' scores of the holdout frames

    def spec(self) -> RejectorSpec:
        return RejectorSpec(
            name=self.served,
            temperature=self.fit.temperature,
            weights=list(self.fit.weights),
            bias=self.fit.bias,
            reason=self.reason,
            validation_aurc=self.validation_aurc,
        )

    def sections(self) -> dict[str, Any]:
        """The report's sections (module docstring)."""
        return {
            "rejectors": {**self.fit.as_dict(), "validation_aurc": self.validation_aurc},
            "served_rejector": {"name": self.served, "reason": self.reason},
            "certification": self.certification.model_dump(),
            "display": {
                "meaning": DISPLAY_MEANING,
                "correct_x": self.correct_x,
                "correct_y": self.correct_y,
                "check_frames": self.check_frames,
                "ece": self.ece,
                "reliability": self.reliability,
            },
        }


def network_outputs(task: str, logits: torch.Tensor) -> np.ndarray:
    """The predictor graph's output from the network's logits: class probabilities, or P(foreground)."""
    probabilities = torch.softmax(logits.float(), dim=1)
    if task == "classify":
        return probabilities.numpy().astype(np.float64)
    return (1.0 - probabilities[:, 0]).numpy().astype(np.float64)


def _split(
    task: str,
    controller: np.ndarray,
    outputs: np.ndarray,
    targets: np.ndarray,
    metric: np.ndarray,
    subjects: np.ndarray,
) -> SplitOutputs:
    risks, failures = task_risk(task, metric)
    return SplitOutputs(
        controller=np.asarray(controller, np.float64),
        outputs=outputs,
        targets=targets,
        risks=risks,
        failures=np.asarray(failures, bool),
        subjects=np.asarray(subjects),
    )


def split_outputs(
    task: str, controller: nn.Module, predictor: nn.Module, split: SplitTensors, device: torch.device
) -> SplitOutputs:
    """One split as the networks score it (evaluate)."""
    logits = infer(predictor.to(device), split.frames, device)
    return _split(
        task,
        infer(controller.to(device), split.frames, device).numpy(),
        network_outputs(task, logits),
        split.targets.numpy(),
        frame_metric(task, logits, split.targets).numpy(),
        np.asarray(split.subjects),
    )


def served_split(
    task: str, outputs: ModelOutputs, targets: np.ndarray, metric: np.ndarray, subjects: np.ndarray
) -> SplitOutputs:
    """One split as the served graphs score it (export): `outputs` of a pair run without a rejector."""
    task_output = outputs.probabilities if task == "classify" else outputs.mask_probability
    assert task_output is not None
    return _split(task, outputs.controller, task_output.astype(np.float64), targets, metric, subjects)


def decide_rejection(
    task: str,
    val: SplitOutputs,
    holdout: SplitOutputs,
    target: CertificationTarget,
    seed: int,
    reward: np.ndarray | None = None,
) -> Rejection:
    """Fit the rejectors on `val` (the frames outside the controller's reward set `reward`, a mask over `val`,
    when there are enough: rejector_fit.unseen_by_controller), choose the served one, certify its line on half
    the holdout's subjects and check it, with its display calibration, on the other half."""
    val, judged_on = unseen_by_controller(val, reward)
    fit = fit_rejectors(task, val, seed)
    scores = validation_scores(task, fit, val, seed)
    validation = {name: aurc(values, val.risks) for name, values in scores.items()}
    served, reason = choose_served(validation, target.rejector, margins_over_softmax(scores, val, seed))
    reason = f"{reason}; judged {judged_on}"
    holdout_scores = {name: fit.scores(name, task, holdout) for name in REJECTORS}  # each once
    served_holdout = holdout_scores[served]
    calibration = calibration_subjects(holdout.subjects, seed)
    check = ~calibration
    certification = certify(
        candidate_lines(fit.scores(served, task, val)),
        served_holdout[calibration],
        holdout.failures[calibration],
        served_holdout[check],
        holdout.failures[check],
        calibration_subject_count=int(np.unique(holdout.subjects[calibration]).size),
        alpha=DEFAULT_ALPHA[task] if target.alpha is None else target.alpha,
        delta=target.delta,
    )
    if calibration.any():
        correct_x, correct_y = correctness_calibration(
            served_holdout[calibration], holdout.failures[calibration]
        )
    else:
        correct_x, correct_y = [0.0, 1.0], [0.0, 1.0]
    ece: float | None = None
    diagram: list[dict[str, float]] = []
    if check.any():
        ece, diagram = expected_calibration_error(
            np.interp(served_holdout[check], correct_x, correct_y), ~holdout.failures[check]
        )
    return Rejection(
        fit=fit,
        served=served,
        reason=reason,
        validation_aurc=validation,
        certification=certification,
        correct_x=correct_x,
        correct_y=correct_y,
        ece=ece,
        reliability=diagram,
        check_frames=int(check.sum()),
        holdout_scores={name: holdout_scores[name] for name in FITTED_ROWS},
    )
