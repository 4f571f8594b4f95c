"""The generalisation benchmark's methods: each a named set of TrainConfig overrides on one shared budget.

A new controller variant is one line in `METHODS`. A variant whose overrides name a config field or a value
this checkout's TrainConfig does not have (a learner still on its branch) is skipped with a note, so the
runner works before and after it lands.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from usqa.contracts.training import OverrideError, TrainConfig, apply_overrides
from usqa.trainer.recipe.plan import CONTINUE_LR_FACTOR, PEAK_LEARNING_RATE
from usqa.trainer.recipe.presets import preset


@dataclass(frozen=True)
class Method:
    """A training config variant: `overrides` are nested TrainConfig keys applied on top of the budget preset."""

    name: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    # The tasks it runs on: a variant of a per-task setting (the credit metric) has nothing to add elsewhere.
    tasks: tuple[str, ...] = ("classify", "segment")


# The first method is the paper's reference; its run also trains the non-selective predictor of each
# (data set, task, seed) (`train_baseline`: same network, steps and batch, all frames), which every method's
# evaluation compares against.
METHODS: tuple[Method, ...] = (
    Method("rw-reinforce", "R_w, REINFORCE (paper reference)", {"reward": {"kind": "weighted"}}),
    Method(
        "rw-credit",
        "R_w, per-frame credit + PPO (`algo = credit`)",
        {"reward": {"kind": "weighted"}, "algo": "credit"},
    ),
    Method(
        "rw-credit-resample",
        "R_w, per-frame credit, reward frames drawn afresh each step (`reward.resample`)",
        {"reward": {"kind": "weighted", "resample": True}, "algo": "credit"},
    ),
    # The credit metric m_j is chosen per task on the development set (usqa.trainer.recipe.presets.preset): the
    # soft probability of the true class for classification, the hard Dice for segmentation (soft until then).
    # The other choice of each task stays as a row, so the decision is visible on every set.
    Method(
        "rw-credit-hard-accuracy",
        "R_w, per-frame credit with the 0/1 accuracy as m_j (`credit.metric = hard`)",
        {"reward": {"kind": "weighted"}, "algo": "credit", "credit": {"metric": "hard"}},
        tasks=("classify",),
    ),
    Method(
        "rw-credit-soft-dice",
        "R_w, per-frame credit with the soft Dice as m_j (`credit.metric = soft`, the earlier default)",
        {"reward": {"kind": "weighted"}, "algo": "credit", "credit": {"metric": "soft"}},
        tasks=("segment",),
    ),
)
REFERENCE = METHODS[0].name
# The benchmark's own budget, "benchmark": the `demo` preset's networks, batch sizes, reward frames and episodes,
# with
# - the supervised stage trained to convergence (issue 24 item 2): at most 3,000 classification steps of 32
#   frames (about 60 epochs of a simulator set's 1,680 training frames, the ordinary CNN of issue 24) or 2,000
#   segmentation steps of 16, a validation check every 100 steps, stopped after 5 checks without a better one.
#   The benchmark trains it once per (data set, task, seed) as the supervised reference (reference.py) and every
#   method's run continues from that file, as `usqa train` continues from its own stage;
# - the predictor continuing at a tenth of the stage's peak learning rate, the plan's rule
#   (usqa.trainer.recipe.plan.CONTINUE_LR_FACTOR).
# Segmentation had 400 predictor steps (80 episodes) until 6 Dec 2026, when its U-Net started from scratch (at the
# demo's 100 it had not left the all-background start); from a converged stage it takes the demo's 20 episodes.
BENCHMARK_STAGE = {
    "classify": {"steps": 3000, "eval_every": 100, "patience": 5},
    "segment": {"steps": 2000, "eval_every": 100, "patience": 5},
}
CONTINUE_LEARNING_RATE = PEAK_LEARNING_RATE * CONTINUE_LR_FACTOR
BUDGETS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "benchmark": (
        "demo",
        {
            "classify": {
                "supervised": BENCHMARK_STAGE["classify"],
                "predictor_learning_rate": CONTINUE_LEARNING_RATE,
            },
            "segment": {
                "supervised": BENCHMARK_STAGE["segment"],
                "predictor_learning_rate": CONTINUE_LEARNING_RATE,
            },
        },
    ),
    "debug": ("debug", {}),
    "demo": ("demo", {}),
    "default": ("default", {}),
}
NON_SELECTIVE = "non-selective"
NON_SELECTIVE_LABEL = "non-selective predictor (all frames)"
# Not a TrainConfig variant of Algorithm 1 but the predictor trained the ordinary way (reference.py); every
# (data set, task, seed) gets one, so every page shows how far the product's predictor is from it.
SUPERVISED_REFERENCE = "supervised-reference"
SUPERVISED_REFERENCE_LABEL = "supervised reference (ordinary training, no controller)"


def method_names() -> list[str]:
    return [m.name for m in METHODS]


def get_method(name: str) -> Method:
    for method in METHODS:
        if method.name == name:
            return method
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names())}")


def unsupported(overrides: dict[str, Any]) -> str | None:
    """Why this TrainConfig cannot take `overrides` (a missing field, a value outside a Literal), or None."""
    try:
        apply_overrides(TrainConfig(), overrides)
    except OverrideError as exc:
        return f"not available in this checkout: {exc}"
    return None


def method_config(
    method: Method, *, budget: str, task: str, seed: int, frame_size: int, train_baseline: bool
) -> TrainConfig:
    """The resolved config of one training run: budget preset for the task, the method's overrides, the seed."""
    algo = method.overrides.get("algo", "reinforce")
    preset_name, budget_overrides = BUDGETS[budget]
    # The preset knows per-algorithm settings (DDPG's budget selection); other learners take the defaults.
    base = preset(preset_name, task, algo=algo if algo in ("reinforce", "ddpg") else "reinforce")  # type: ignore[arg-type]
    config = apply_overrides(apply_overrides(base, budget_overrides.get(task, {})), method.overrides)
    return replace(
        config,
        name=f"{budget}-{method.name}",
        seed=seed,
        frame=replace(config.frame, size=frame_size) if config.frame.size != frame_size else config.frame,
        train_baseline=train_baseline,
    )


def available_methods(names: list[str]) -> tuple[list[Method], dict[str, str]]:
    """(methods to run, {skipped method: why}) for the requested names, in `METHODS` order."""
    run: list[Method] = []
    skipped: dict[str, str] = {}
    for method in METHODS:
        # The reference always runs: its run holds the non-selective predictor every method is compared with.
        if method.name not in names and method.name != REFERENCE:
            continue
        reason = unsupported(method.overrides)
        if reason:
            skipped[method.name] = reason
        else:
            run.append(method)
    return run, skipped
