"""The benchmark's data sets (experiments/generalisation/data.py): roles, the fresh held-out sets, stable keys."""

from __future__ import annotations

from pathlib import Path

from experiments.generalisation.benchmark import parse, plan
from experiments.generalisation.data import benchmark_data
from experiments.generalisation.methods import REFERENCE
from experiments.generalisation.page import role

FRESH = ("thyroid_held_out", "abdomen_held_out")


def test_the_fresh_sets_are_the_held_out_ones_and_breast_is_development() -> None:
    roles = {d.name: d.role for d in benchmark_data()}
    assert roles == {
        "prostate_evidence_loss": "development",
        "breast_held_out": "development",
        "thyroid_held_out": "held_out",
        "abdomen_held_out": "held_out",
        "real_frames": "real",
    }
    fresh = [d for d in benchmark_data() if d.name in FRESH]
    assert all((d.built, d.first_evaluated) == ("2026-12-06", "2026-12-06") for d in fresh)
    assert all(d.tasks == ("classify", "segment") for d in fresh)


def test_breast_keeps_its_folder_so_earlier_runs_stay_comparable() -> None:
    # The content key of the settings that built runs/generalisation/data/breast_held_out-* before issue 24.
    keys = {d.name: d.key() for d in benchmark_data()}
    assert keys["breast_held_out"] == "b848760a661c"
    assert keys["prostate_evidence_loss"] == "e63dc7a587e2"
    assert len(set(keys.values())) == len(keys)


def test_the_default_grid_plans_the_fresh_sets_and_a_subset_can_leave_them_out(tmp_path: Path) -> None:
    names = [d.name for d in benchmark_data()]
    assert parse(["--out", str(tmp_path)]).datasets == names  # `make results` evaluates them
    quick = parse(["--quick", "--out", str(tmp_path)]).datasets  # a code check does not touch them
    assert quick == [n for n in names if n not in FRESH]
    assert parse(["--quick", "--out", str(tmp_path), "--datasets", *FRESH]).datasets == list(FRESH)
    args = parse(["--out", str(tmp_path), "--seeds", "0", "--methods", REFERENCE, "--tasks", "classify"])
    jobs = plan(args, {name: tmp_path / name for name in names})
    assert {j["dataset"] for j in jobs} == set(names)


def test_the_page_says_when_a_set_was_built_and_first_evaluated() -> None:
    described = {"role_note": "held out: reported only", "built": "2026-12-06", "first_evaluated": "not yet"}
    assert role(described) == "held out: reported only (built 2026-12-06, first evaluated not yet)"
    assert role({"role_note": "development"}) == "development"  # a page from before the dates
    # A held-out set whose rows were read before a recipe decision says so, whatever its role was.
    read = {"name": "thyroid_held_out", "role_note": "held out: reported only, not used for any decision"}
    assert role(read) == "held out: reported, and read before a recipe decision on 2026-12-06"
