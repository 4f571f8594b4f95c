from __future__ import annotations

import pytest

from usqa.service.simulator import simulate_cine
from usqa.service.simulator.benchmarks import SETTINGS, get_setting
from usqa.service.simulator.mixes import MIXES, STANDARD, get_mix
from usqa.service.simulator.presets import HELD_OUT_PRESET_NAMES, PRESET_NAMES


def _non_amenable_share(name: str, subjects: int = 8, frames: int = 30) -> float:
    setting = get_setting(name)
    rendered = [
        frame
        for subject in range(subjects)
        for frame in simulate_cine(
            setting.preset,
            frames,
            seed=setting.seed,
            size=48,
            degraded_fraction=setting.degraded_fraction,
            subject_index=subject,
            mix=setting.mix,
        )
    ]
    return sum(1 - f.amenable for f in rendered) / len(rendered)


def test_development_setting_makes_a_third_of_frames_non_amenable() -> None:
    # 34.5 % at full size (docs/simulator.md); a small sample lands within a wide tolerance.
    assert 0.2 <= _non_amenable_share("prostate_evidence_loss") <= 0.5


def test_breast_setting_was_held_out_and_is_now_development() -> None:
    dev, breast = get_setting("prostate_evidence_loss"), get_setting("breast_held_out")
    assert dev.role == "development" and breast.role == "development"  # looked at (issue 24): development
    assert breast.preset in HELD_OUT_PRESET_NAMES and breast.preset not in PRESET_NAMES
    assert (breast.mix, breast.seed) != (dev.mix, dev.seed) and breast.mix != dev.mix
    assert breast.first_evaluated == "2026-12-03"
    assert 0.05 <= _non_amenable_share("breast_held_out") <= 0.3


@pytest.mark.parametrize("name", ["thyroid_held_out", "abdomen_held_out"])
def test_fresh_held_out_settings_are_dated_and_use_seeds_of_their_own(name: str) -> None:
    fresh = get_setting(name)
    assert fresh.role == "held_out" and fresh.mix == "held_out" and fresh.degraded_fraction == 0.5
    assert (fresh.built, fresh.first_evaluated) == ("2026-12-06", "2026-12-06")
    assert fresh.frames == 2400 and 40 <= fresh.subjects <= 80
    others = [s for s in SETTINGS.values() if s.name != name]
    assert fresh.seed not in {s.seed for s in others}
    assert fresh.preset not in {s.preset for s in others}
    # Counts only (nobody looks at a method's numbers on them): both labels occur in a small sample.
    assert 0.02 <= _non_amenable_share(name, subjects=4) <= 0.6


def test_standard_mix_is_every_kind_equally_often() -> None:
    assert set(STANDARD.shares()) == set(MIXES["held_out"].shares())
    assert len(set(STANDARD.shares().values())) == 1


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of standard"):
        get_mix("gentle")
    with pytest.raises(ValueError, match="choose one of prostate_evidence_loss"):
        get_setting("nope")


def test_settings_print_a_reproducible_command() -> None:
    command = SETTINGS["breast_held_out"].command("runs/held")
    assert "--preset linear_breast --mix held_out" in command and "--seed 7919" in command
