"""The study a scan is filed in: read from a DICOM header (invalid values left out, never copied) or named in
the hello (invalid values refused with the rule), and chosen in that order by the record."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from usqa.service.api.scan_messages import ScanHello
from usqa.service.frames.dicom_uids import InstanceUids, read_study_identity
from usqa.service.live.session_store import SessionRecord
from usqa.service.live.sessions import ScanSessionStats
from usqa.service.record.dicom_objects import derived_uid
from usqa.service.record.document import study_of

from ...support.cines import PATIENT, cine_bytes, cine_frames, us_cine


def test_the_study_of_a_cine_is_its_uid_and_patient_module() -> None:
    cine = us_cine(cine_frames(2, seed=1))
    study = read_study_identity(cine_bytes(cine))
    assert study is not None and study.study_instance_uid == cine.StudyInstanceUID
    assert study.patient_id == PATIENT["PatientID"] and study.study_time == PATIENT["StudyTime"]


def test_a_malformed_header_value_is_left_out_and_no_study_uid_means_no_study() -> None:
    cine = us_cine(cine_frames(2, seed=1))
    cine.PatientSex = "X"  # not M, F or O
    cine.PatientBirthDate = "1960-01-01"
    study = read_study_identity(cine_bytes(cine))
    assert study is not None and study.patient_sex is None and study.patient_birth_date is None
    del cine.StudyInstanceUID
    assert read_study_identity(cine_bytes(cine)) is None
    assert read_study_identity(b"\x89PNG not dicom") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patient_birth_date", "1960-01-01"),
        ("patient_sex", "male"),
        ("patient_name", "Doe\\Jane"),
        ("accession_number", "A" * 17),
        ("study_time", "25h"),
        ("study_instance_uid", "1.02.3"),
        ("patient_id", "P\n1"),
    ],
)
def test_the_hello_refuses_a_study_field_that_is_not_valid_dicom(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ScanHello.model_validate({"type": "hello", "study": {field: value}})


def test_the_hello_refuses_unknown_study_fields() -> None:
    with pytest.raises(ValidationError):
        ScanHello.model_validate({"type": "hello", "study": {"patient_weight": "80"}})


def record() -> SessionRecord:
    return SessionRecord(ScanSessionStats(reference=None), captures=2, spacing_s=1.0, max_pixels=1 << 20)


def test_the_record_files_in_the_named_study_else_the_source_study_else_one_of_its_own() -> None:
    r = record()
    assert study_of(r).study_instance_uid == derived_uid(r.session_id, "study")
    r.add_dicom(InstanceUids("1.2.3", "1.2.3.4", "1.2.3.4.5"))
    assert study_of(r).study_instance_uid == "1.2.3"
    r.study_fields = {"patient_id": "P9"}
    assert (study_of(r).study_instance_uid, study_of(r).patient_id) == ("1.2.3", "P9")
    r.study_fields = {"study_instance_uid": "1.9", "patient_id": "P9"}
    assert study_of(r).study_instance_uid == "1.9"
