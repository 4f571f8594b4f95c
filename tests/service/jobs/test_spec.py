"""Job specs: overrides on a base config, refused before anything is queued; job records and their ids."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from usqa.contracts.training import ALGOS, PRESETS, REWARDS, TASKS, TrainConfig
from usqa.service.jobs import JobRecords, JobSpec, SpecError, UnknownJob, check_spec, resolve_config
from usqa.service.jobs.queue import redact
from usqa.service.jobs.records import new_job_id

DATASET = "ds-0123456789abcdef"


def test_overrides_change_the_base_nested_dotted_and_typed() -> None:
    spec = JobSpec(
        dataset=DATASET,
        task="segment",
        config="debug",
        overrides={"episodes": 7, "reward": {"kind": "avg"}, "backbone": {"widths": [4, 8, 16]}},
    )
    config = resolve_config(spec, TrainConfig(task="segment"), backbone_path=Path("/data/backbones/b.pt"))
    assert config.task == "segment" and config.episodes == 7 and config.reward.kind == "avg"
    assert config.backbone.widths == (4, 8, 16) and config.backbone_checkpoint == "/data/backbones/b.pt"
    dotted = JobSpec(dataset=DATASET, task="classify", overrides={"reward.kind": "avg", "frame.size": 64})
    assert resolve_config(dotted, TrainConfig()).frame.size == 64
    check_spec(JobSpec(dataset=DATASET, task="classify"))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"episodes": "10"}, "'episodes' must be an integer"),
        ({"episodes": True}, "'episodes' must be an integer"),
        ({"episodes": 0}, "at least 1"),
        ({"predictor_learning_rate": -1.0}, "must be positive"),
        ({"reward": {"kind": "best"}}, "'reward.kind' must be one of"),
        ({"reward": 3}, "'reward' must be an object"),
        ({"backbone_checkpoint": "/etc/passwd"}, "use `backbone`"),
        ({"task": "segment"}, "not allowed"),
        ({"frame": {"size": 4096}}, "frame.size must be between"),
        ({"nope": 1}, "'nope' is not a training setting"),
        ({"reward.nope": 1}, "'reward.nope' is not a training setting"),
        ({"task.x": 1}, "not allowed"),
        ({"frame": {"size": 0}}, "FrameSpec.size must be a positive integer"),
        ({"backbone": {"widths": [4, -8]}}, "list of positive integers"),
    ],
)
def test_bad_overrides_name_the_field(overrides: dict[str, object], words: str) -> None:
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace("`", "`")):
        check_spec(JobSpec(dataset=DATASET, task="classify", overrides=overrides))


def test_spec_fields_are_validated() -> None:
    for bad in (
        {"dataset": "../x", "task": "classify"},
        {"dataset": DATASET, "task": "detect"},
        {"dataset": DATASET, "task": "classify", "backbone": "../../etc/passwd"},
        {"dataset": DATASET, "task": "classify", "base_job": "not-a-job"},
        {"dataset": DATASET, "task": "classify", "surprise": 1},
    ):
        with pytest.raises(ValidationError):
            JobSpec.model_validate(bad)


def test_records_are_idempotent_and_cancellable(tmp_path: Path) -> None:
    records = JobRecords(tmp_path)
    spec = JobSpec(dataset=DATASET, task="classify")
    job_id = new_job_id("client-key")
    assert job_id == new_job_id("client-key") != new_job_id("other-key")
    first, created = records.create(job_id, spec)
    again, created_again = records.create(job_id, JobSpec(dataset=DATASET, task="segment"))
    assert created and not created_again and again.spec == first.spec
    assert [r.id for r in records.list()] == [job_id] and not records.cancel_requested(job_id)
    records.request_cancel(job_id)
    assert records.cancel_requested(job_id)
    with pytest.raises(UnknownJob):
        records.get(new_job_id())
    with pytest.raises(SpecError):
        records.get("../../etc/passwd")


def test_redact_hides_passwords() -> None:
    assert redact("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact("redis://user:s3cret@host/1") == "redis://user:***@host/1"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_spec_choices_mirror_the_training_config() -> None:
    hints = typing.get_type_hints(JobSpec)
    assert typing.get_args(hints["algo"]) == ALGOS
    assert typing.get_args(hints["reward"]) == REWARDS
    assert typing.get_args(hints["task"]) == TASKS
    assert typing.get_args(hints["config"]) == PRESETS
