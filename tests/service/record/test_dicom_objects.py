"""The DICOM objects of a scan (usqa/service/record/dicom_objects.py), read back with pydicom: valid UIDs, one
study and patient across them, SR references that resolve, names that do not change between exports."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from usqa.service.frames.dicom_uids import StudyIdentity, is_uid
from usqa.service.record.dicom_objects import (
    CaptureImage,
    ScanDocument,
    derived_uid,
    encode,
    model_words,
    scan_objects,
)

from ...support.orthanc import sr_image_references

STUDY = StudyIdentity(
    "1.2.826.0.1.3680043.2.1125.1", patient_id="P-1", patient_name="Doe^Jane", patient_sex="F"
)


def document(
    captures: int = 3, *, session: str = "0123456789ab", study: StudyIdentity = STUDY
) -> ScanDocument:
    rng = np.random.default_rng(0)
    images = [
        CaptureImage(k, 10 * k, 1.5 * k, 0.95 - 0.05 * k, "good", rng.integers(0, 256, (40, 56), np.uint8))
        for k in range(captures)
    ]
    return ScanDocument(
        session_id=session,
        study=study,
        started_at=1_796_000_000.0,
        model_name="usqa-prostate",
        model_versions=[4],
        task="classify",
        promise="Among frames called good, the task model's class is wrong on at most 2% of them.",
        summary_text="Scan of 0:05: usable 90 % of the time.",
        frames_scored=150,
        verdict_seconds={"good": 4.5, "adjust": 0.5},
        verdict_frames={"good": 135, "adjust": 15},
        captures=images,
    )


def read_back(doc: ScanDocument) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(encode(d))) for d in scan_objects(doc)]


def test_the_objects_share_the_study_and_patient_and_the_sr_references_every_capture() -> None:
    *captures, sr = read_back(document())
    assert len(captures) == 3 and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"
    for dataset in [*captures, sr]:
        assert dataset.StudyInstanceUID == STUDY.study_instance_uid
        assert (dataset.PatientID, str(dataset.PatientName), dataset.PatientSex) == ("P-1", "Doe^Jane", "F")
        for uid in (dataset.SOPInstanceUID, dataset.SeriesInstanceUID, dataset.StudyInstanceUID):
            assert is_uid(str(uid)), uid
    assert len({c.SeriesInstanceUID for c in captures} | {sr.SeriesInstanceUID}) == 2
    referenced = sr_image_references(sr)
    assert referenced == [c.SOPInstanceUID for c in captures]
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert [r.ReferencedSOPInstanceUID for r in evidence.ReferencedSOPSequence] == referenced
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert np.array_equal(captures[0].pixel_array, document().captures[0].pixels)


def test_exporting_a_session_again_names_its_objects_the_same_and_another_session_differently() -> None:
    first = [d.SOPInstanceUID for d in read_back(document())]
    again = [d.SOPInstanceUID for d in read_back(document())]
    other = [d.SOPInstanceUID for d in read_back(document(session="ba9876543210"))]
    assert first == again and not set(first) & set(other)
    assert derived_uid("s", "capture", 0) != derived_uid("s", "capture", 1)


def test_an_rgb_capture_is_an_rgb_image_and_a_scan_without_captures_still_has_its_report() -> None:
    doc = document(1)
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), np.uint8)
    doc = ScanDocument(**{**vars(doc), "captures": [CaptureImage(0, 0, 0.0, 0.9, "good", rgb)]})
    capture, _ = read_back(doc)
    assert capture.PhotometricInterpretation == "RGB" and np.array_equal(capture.pixel_array, rgb)
    (sr,) = read_back(document(0))
    assert sr.StudyInstanceUID == STUDY.study_instance_uid and sr.PatientID == "P-1"
    # It claims no evidence: there is no image to reference.
    assert not sr.get("CurrentRequestedProcedureEvidenceSequence") and not sr.get(
        "PertinentOtherEvidenceSequence"
    )


def test_a_study_without_a_date_is_dated_by_the_scan_and_the_model_is_named_with_its_versions() -> None:
    capture, _ = read_back(document(1, study=StudyIdentity("1.2.3")))
    assert len(capture.StudyDate) == 8 and capture.PatientID == ""
    doc = document(0)
    assert model_words(doc) == "usqa-prostate version 4 (classify)"
    assert model_words(ScanDocument(**{**vars(doc), "model_versions": [3, 4]})) == (
        "usqa-prostate versions 3, 4 (classify)"
    )


@pytest.mark.parametrize("session", ["", "a" * 65, "../x", "x/y"])
def test_derived_uids_are_valid_whatever_the_session_id(session: str) -> None:
    assert is_uid(derived_uid(session, "report", 1))
