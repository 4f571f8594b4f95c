"""What a served version's pass line promises, in one sentence a sonographer can read (issue #25).

The same words reach `/readyz`, the stream's `ready` message (and so the page) and the model card. A version
whose manifest has no certification, or whose certification failed, says "not certified" and why: nothing
falls back silently to a line that only looks like a promise.
"""

from __future__ import annotations

from dataclasses import dataclass

from usqa.service.registry.manifest import Manifest

MSG_NO_CERTIFICATION = (
    "not certified: this version was exported without a certification (before schema_version 3); the pass line "
    "is the score at the served rejection rate on validation frames and promises nothing about the task "
    "model's errors; re-export it to certify a line"
)
MSG_NOT_CERTIFIED = (
    "not certified ({reason}); the pass line is the score at the served rejection rate on validation frames "
    "and promises nothing about the task model's errors"
)


FAILURE_WORDS = {
    "classify": "the task model's class is wrong",
    "segment": "the task model's outline fails (Dice below 0.8)",
}


@dataclass(frozen=True)
class PassLine:
    rejector: str  # the served rejector's name
    certified: bool
    alpha: float | None
    delta: float | None
    promise: str


def pass_line(manifest: Manifest) -> PassLine:
    rejector = "controller" if manifest.rejector is None else manifest.rejector.name
    certification = manifest.certification
    if certification is None:
        return PassLine(rejector, False, None, None, MSG_NO_CERTIFICATION)
    if not certification.certified:
        return PassLine(
            rejector,
            False,
            certification.alpha,
            certification.delta,
            MSG_NOT_CERTIFIED.format(reason=certification.reason),
        )
    promise = (
        f"Among frames called good, {FAILURE_WORDS.get(manifest.task, 'the task model fails')} on at most "
        f"{certification.alpha:.0%} of them, with {1 - certification.delta:.0%} confidence, for frames like "
        f"the {certification.calibration_frames} calibration frames of {certification.calibration_subjects} "
        f"subjects it was certified on"
    )
    if certification.holdout_risk is not None and certification.holdout_coverage is not None:
        promise += (
            f" (checked on {certification.holdout_frames} other frames: {certification.holdout_coverage:.0%} "
            f"called good, of which {certification.holdout_risk:.1%} wrong)"
        )
    return PassLine(rejector, True, certification.alpha, certification.delta, promise + ".")
