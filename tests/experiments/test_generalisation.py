from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docs_gen.blocks import MarkerError, begin_marker, block_body, check_block
from experiments.generalisation.benchmark import _with_earlier_runs, guarded, main, parse, plan
from experiments.generalisation.data import trivial_baseline
from experiments.generalisation.methods import (
    METHODS,
    REFERENCE,
    SUPERVISED_REFERENCE,
    SUPERVISED_REFERENCE_LABEL,
    Method,
    available_methods,
    method_config,
    unsupported,
)
from experiments.generalisation.page import collect, learns, mean_std, render, write_docs
from usqa.service.datasets import load_dataset
from usqa.service.simulator import write_dataset

RATIOS = [round(0.05 * i, 2) for i in range(9)]
PAGE = "# Results\n\nprose kept\n\n<!-- generated:generalisation begin (python -m x) -->\nold\n<!-- generated:generalisation end -->\n\nmore prose\n"


def test_methods_are_unique_and_the_reference_comes_first() -> None:
    names = [m.name for m in METHODS]
    assert len(names) == len(set(names))
    assert names[0] == REFERENCE
    assert unsupported(METHODS[0].overrides) is None


def test_an_override_this_config_lacks_is_skipped_with_a_note() -> None:
    assert "'reinforce.nonexistent' is not a training setting" in str(
        unsupported({"reinforce": {"nonexistent": 1}})
    )
    assert "'algo' must be one of" in str(unsupported({"algo": "nonexistent"}))
    assert unsupported({"algo": "ddpg", "reinforce": {"learning_rate": 0.1}}) is None
    run, skipped = available_methods(["not-the-reference"])
    assert [m.name for m in run] == [REFERENCE]  # the reference always runs: it holds the baseline
    assert skipped == {}


def test_method_config_applies_budget_overrides_seed_and_frame_size() -> None:
    method = Method("x", "x", {"reward": {"kind": "selective"}, "reinforce": {"learning_rate": 0.5}})
    config = method_config(
        method, budget="debug", task="segment", seed=3, frame_size=48, train_baseline=False
    )
    assert (config.seed, config.frame.size, config.train_baseline) == (3, 48, False)
    assert (config.reward.kind, config.reinforce.learning_rate, config.task) == ("selective", 0.5, "segment")
    assert config.episodes == 3  # the debug preset's budget
    assert config.name == "debug-x"


def test_the_benchmark_budget_is_the_demo_preset_with_a_converged_stage() -> None:
    method = METHODS[0]
    demo, bench = (
        method_config(method, budget=b, task="segment", seed=0, frame_size=64, train_baseline=True)
        for b in ("demo", "benchmark")
    )
    assert bench.total_steps == demo.total_steps == 100  # 20 episodes x 5, from the converged stage
    assert (bench.batch_size, bench.unet, bench.frame) == (demo.batch_size, demo.unet, demo.frame)
    classify = [
        method_config(method, budget=b, task="classify", seed=0, frame_size=64, train_baseline=True)
        for b in ("demo", "benchmark")
    ]
    # The same networks and shapes; the stage to convergence, then a tenth of its peak (the plan's rule).
    changed = {"name", "supervised", "predictor_learning_rate"}
    demo_rest, bench_rest = ({k: v for k, v in c.to_dict().items() if k not in changed} for c in classify)
    assert demo_rest == bench_rest
    for config in (bench, classify[1]):
        assert config.supervised.steps >= 2000 and config.supervised.patience == 5
        assert config.predictor_learning_rate == pytest.approx(config.supervised.learning_rate / 10)


def test_a_method_for_one_task_is_planned_on_that_task_only(tmp_path: Path) -> None:
    segment_only = [m for m in METHODS if m.tasks == ("segment",)]
    assert segment_only, "the soft-Dice credit row is segmentation's only"
    args = parse(["--out", str(tmp_path), "--seeds", "0", "--methods", *(m.name for m in segment_only)])
    jobs = plan(args, {"prostate_evidence_loss": tmp_path / "d", "real_frames": tmp_path / "r"})
    planned = {(j["dataset"], j["task"], j["method"]) for j in jobs}
    assert ("prostate_evidence_loss", "segment", segment_only[0].name) in planned
    assert not any(task == "classify" and m == segment_only[0].name for _, task, m in planned)
    assert ("real_frames", "classify", REFERENCE) in planned  # the reference still runs on every task


def test_the_credit_metric_is_chosen_per_task_and_a_method_can_override_it() -> None:
    credit = Method("c", "c", {"algo": "credit"})
    metric = {
        task: method_config(
            credit, budget="benchmark", task=task, seed=0, frame_size=64, train_baseline=False
        ).credit.metric
        for task in ("classify", "segment")
    }
    assert metric == {"classify": "soft", "segment": "hard"}
    soft = next(m for m in METHODS if m.name == "rw-credit-soft-dice")
    config = method_config(
        soft, budget="benchmark", task="segment", seed=0, frame_size=64, train_baseline=False
    )
    assert (config.algo, config.credit.metric) == ("credit", "soft")


def test_trivial_baselines_on_a_tiny_set(tmp_path: Path) -> None:
    out = tmp_path / "d"
    write_dataset(out, frames=96, subjects=8, seed=1, size=32, mix="evidence_loss", workers=1)
    dataset = load_dataset(out)
    train_labels = [r.label for r in dataset.split("train")]
    majority = int(np.bincount(train_labels).argmax())
    holdout = [r.label for r in dataset.split("holdout")]
    classify = trivial_baseline(out, "classify", 32)
    assert classify["majority_class"] == majority
    assert classify["metric"] == pytest.approx(np.mean(np.equal(holdout, majority)))
    # Holdout segmentation frames all show the structure: an empty mask scores (almost) 0 on each.
    segment = trivial_baseline(out, "segment", 32)
    assert segment["name"] == "empty mask"
    assert segment["metric"] == pytest.approx(0.0, abs=1e-3)


def test_mean_std_uses_the_sample_std() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([0.7]) == (0.7, 0.0)


def _report(task: str, level: float) -> dict[str, Any]:
    curve = {"point": [level + 0.01 * i for i in range(9)], "mean": [level] * 9, "std": [0.0] * 9}
    names = (
        "controller",
        "random",
        "confidence",
        "labels",
        "baseline",
        "baseline_confidence",
        "baseline_labels",
    )
    return {
        "task": task,
        "metric": "accuracy" if task == "classify" else "dice",
        "rejection_ratios": RATIOS,
        "operating_point": 0.05 if task == "classify" else 0.15,
        "curves": dict.fromkeys(names, curve),
        "kappa": {"controller": 0.4, "confidence": 0.2, "baseline_confidence": 0.1},
        "kappa_at_prevalence": {"controller": 0.5, "confidence": 0.3, "baseline_confidence": 0.2},
        "frames": 100,
        "subjects": 4,
        "non_amenable_fraction": 0.3,
    }


def _run(
    dataset: str, task: str, seed: int, level: float, probe_baseline: dict[str, float]
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "task": task,
        "method": REFERENCE,
        "seed": seed,
        "seconds": {"baseline": 10.0 + seed, "amenability": 20.0},
        "probe": {"controller_scores": {"p5": 0.7, "p50": 0.8, "p95": 0.9}, "baseline": probe_baseline},
        "report": _report(task, level + 0.01 * seed),
    }


def _summary() -> dict[str, Any]:
    """A fixture summary: a learning classifier on the development set, collapsed predictors on the held-out one."""

    def data(name: str, role: str, trivial: dict[str, float]) -> dict[str, Any]:
        tasks = {
            task: {
                "prevalence": {"all": 0.3, "train": 0.3, "val": 0.3, "holdout": 0.25},
                "trivial": {
                    "name": "majority class (1)" if task == "classify" else "empty mask",
                    "metric": value,
                    **({"majority_class": 1} if task == "classify" else {}),
                },
            }
            for task, value in trivial.items()
        }
        note = {"development": "development: used for every decision"}.get(
            role, "held out: reported only, not used for any decision"
        )
        return {
            "name": name,
            "role": role,
            "role_note": note,
            "command": "cmd",
            "frames": 400,
            "subjects": 12,
            "frame_size": 64,
            "tasks": tasks,
        }

    runs = [_run("dev", "classify", s, 0.9, {"top_class": 1, "top_class_share": 0.6}) for s in (0, 1, 2)]
    runs += [_run("held", "classify", s, 0.6, {"top_class": 1, "top_class_share": 1.0}) for s in (0, 1, 2)]
    runs += [_run("held", "segment", s, 0.1, {"empty_mask_share": 0.97}) for s in (0, 1, 2)]
    # The supervised reference where it ran (dev classify, 0.94 and 0.96); the held-out rows show n/a.
    runs += [
        {
            "dataset": "dev",
            "task": "classify",
            "method": SUPERVISED_REFERENCE,
            "seed": s,
            "seconds": {"supervised": 30.0},
            "holdout": {"metric": m, "frames": 100},
        }
        for s, m in ((0, 0.94), (1, 0.96))
    ]
    meta = {
        "budget": "demo",
        "quick": False,
        "seeds": [0, 1, 2],
        "resamples": 200,
        "datasets": [
            data("dev", "development", {"classify": 0.6}),
            data("held", "held_out", {"classify": 0.6, "segment": 0.0}),
        ],
        "methods": [
            {"name": REFERENCE, "label": "R_w, REINFORCE", "overrides": {}, "skipped": None},
            {"name": "future", "label": "a future learner", "overrides": {}, "skipped": "no field `x`"},
        ],
        "machine": {"cpu_count": 2, "torch_threads_per_run": 1, "jobs": 2, "load_average": [3.0, 3.0, 3.0]},
        "wall_seconds": 600.0,
        "trained_now": 9,
        "finished": "2026-12-03 09:00 UTC",
        "runs": [],
    }
    return json.loads(json.dumps({"meta": meta, "runs": runs, "missing": ["runs/held/segment/x/seed3"]}))


def test_the_bar_and_its_reasons() -> None:
    summary = _summary()
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in summary["runs"]:
        by.setdefault((r["dataset"], r["task"]), []).append(r)
    majority = {"metric": 0.6, "majority_class": 1}
    assert learns("classify", majority, by[("dev", "classify")])["passes"]
    held = learns("classify", majority, by[("held", "classify")])
    assert not held["passes"] and "predictor at majority class" in held["reason"]
    other = learns("classify", {"metric": 0.6, "majority_class": 0}, by[("held", "classify")])
    assert "predictor stuck on one class (1)" in other["reason"]
    segment = learns("segment", {"metric": 0.0}, by[("held", "segment")])
    assert (
        not segment["passes"]
        and "empty masks for >= 95 % of holdout frames in 3/3 seeds" in segment["reason"]
    )
    assert "out of reach" in learns("classify", {"metric": 0.95}, by[("held", "classify")])["reason"]


def test_page_renders_every_data_set_task_and_method_from_the_json() -> None:
    page = render(_summary())
    assert page.count("### ") == 3
    assert (
        "| `dev` | classify | 0.600 | 0.910 ± 0.010 | +0.310 | 3/3 | beats the bar | 0.950 ± 0.014 | " in page
    )
    assert (
        "| -0.040 (**more than 2 points below**) |" in page
    )  # the non-selective 0.910 vs the reference's 0.950
    assert f"| {SUPERVISED_REFERENCE_LABEL} | nothing | 0.950 ± 0.014 |  |  |  |  |  | 30 ± 0 s |" in page
    assert page.count(f"| {SUPERVISED_REFERENCE_LABEL} | nothing |") == 1  # only where it ran
    assert "beats the bar | n/a |" not in page and "| n/a |  |" in page
    assert "**does not**: predictor at majority class" in page
    assert "held out: reported only, not used for any decision" in page
    assert "trivial: majority class (1)" in page and "trivial: empty mask" in page
    assert "ground truth (ceiling)" in page and "its own confidence" in page and "| random |" in page
    assert "0.70–0.90" in page  # controller score spread
    assert "11 ± 1 s" in page  # baseline training time per seed
    assert "a future learner: no field `x`" in page
    assert "runs/held/segment/x/seed3" in page


def test_a_results_page_without_markers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results.md").write_text("# Results\n\nno markers here\n")
    with pytest.raises(MarkerError):
        write_docs(_summary(), tmp_path)
    # The command refuses before it builds or trains anything.
    with pytest.raises(MarkerError):
        main(["--quick", "--out", str(tmp_path / "out"), "--docs", str(tmp_path)])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_quick_command_end_to_end_and_render_only(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text(PAGE)
    out = tmp_path / "out"
    # The real command with the smallest grid: one quick data set, one task, two seeds, one process.
    args = ["--quick", "--out", str(out), "--docs", str(docs), "--datasets", "prostate_evidence_loss"]
    args += ["--tasks", "classify", "--jobs", "1", "--resamples", "5", "--methods", REFERENCE]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert {(r["method"], r["seed"]) for r in results["runs"]} == {
        (method, seed) for method in (REFERENCE, SUPERVISED_REFERENCE) for seed in (0, 1)
    }
    assert results["meta"]["machine"]["torch_threads_per_run"] == 1
    page = (docs / "results.md").read_text()
    assert page.startswith("# Results\n\nprose kept\n") and page.endswith("more prose\n")
    body = block_body(page, "generalisation")
    assert "`prostate_evidence_loss`, classify" in body and "trivial: majority class" in body
    assert f"| {SUPERVISED_REFERENCE_LABEL} | nothing |" in body
    # Rendering again from the JSON alone gives the same block; a second run trains nothing.
    assert main([*args, "--render-only"]) == 0
    assert block_body((docs / "results.md").read_text(), "generalisation") == body
    assert main(args) == 0
    assert json.loads((out / "meta.json").read_text())["trained_now"] == 0


def test_a_failing_run_is_recorded_and_listed_not_fatal(tmp_path: Path) -> None:
    def broken(job: dict[str, Any]) -> None:
        raise RuntimeError("learner exploded")

    run = "runs/dev/classify/m/seed0"
    assert not guarded(broken, {"run_dir": str(tmp_path / run)})
    meta = {**_summary()["meta"], "runs": [run]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    summary = collect(tmp_path)
    assert summary["runs"] == []
    assert summary["missing"] == [f"{run} (RuntimeError: learner exploded)"]


def test_render_only_without_a_run_says_so(tmp_path: Path) -> None:
    (tmp_path / "results.md").write_text(PAGE)
    with pytest.raises(SystemExit, match="run the benchmark before --render-only"):
        main(["--render-only", "--out", str(tmp_path / "out"), "--docs", str(tmp_path)])


def test_the_committed_results_page_carries_the_block_once() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "results.md"
    text = page.read_text(encoding="utf-8")
    check_block(page, "generalisation")
    assert begin_marker("generalisation", "experiments.generalisation") in text


def test_a_method_added_later_joins_the_runs_of_the_same_grid(tmp_path: Path) -> None:
    grid = {"budget": "benchmark", "quick": False, "seeds": [0, 1, 2], "resamples": 200}
    both = {"name": "a", "tasks": {"classify": {"n": 1}, "segment": {"n": 2}}}
    earlier = {
        **grid,
        "runs": ["a/classify/ref/seed0", "a/segment/ref/seed0"],
        "methods": [{"name": "ref"}],
        "datasets": [both, {"name": "b", "tasks": {"classify": {"n": 3}}}],
    }
    (tmp_path / "meta.json").write_text(json.dumps(earlier))
    now = {
        **grid,
        "runs": ["a/classify/ref/seed0", "a/classify/new/seed0"],
        "methods": [{"name": "new"}],
        "datasets": [{"name": "a", "tasks": {"classify": {"n": 4}}}],
    }
    merged = _with_earlier_runs(now, tmp_path / "meta.json")
    assert merged["runs"] == ["a/classify/ref/seed0", "a/segment/ref/seed0", "a/classify/new/seed0"]
    assert [m["name"] for m in merged["methods"]] == ["new", "ref"]
    # A `--tasks classify` invocation keeps segmentation and the other data sets on the page.
    assert merged["datasets"] == [
        {"name": "a", "tasks": {"classify": {"n": 4}, "segment": {"n": 2}}},
        {"name": "b", "tasks": {"classify": {"n": 3}}},
    ]
    # Another budget is another page: nothing earlier joins it.
    other = {**now, "budget": "demo"}
    assert _with_earlier_runs(other, tmp_path / "meta.json") == other
