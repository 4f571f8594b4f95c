"""The scan as a clinical record in a real PACS (issue #26): a DICOM cine streamed through /ws/scan, or pushed
to the DICOM listener, ends up in Orthanc as its best frames and an SR that references them, in the cine's
own study; with Orthanc down during the scan, the objects wait in the outbox and arrive once it is back."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from pynetdicom import AE

from usqa.cli import main
from usqa.client.dicom_listener import DicomListener, SeriesOutcome
from usqa.service.api import create_app
from usqa.service.frames.dicom_uids import is_uid
from usqa.service.record.dicom_objects import CAPTURE_SERIES_DESCRIPTION, REPORT_SERIES_DESCRIPTION

from ...support.cines import PATIENT, US_MULTIFRAME, cine_frames, us_cine, write_cine
from ...support.orthanc import OrthancServer, sr_image_references
from ..conftest import MODEL_NAME, LiveServer, make_settings, serve

CINE_FRAMES = 150  # 5 s at 30 fps: room for several captures a second apart
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR Storage
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
DELIVERY_TIMEOUT_S = 60.0


def pacs_settings(registry_root: Path, tmp_path: Path, pacs: OrthancServer) -> Any:
    return make_settings(
        registry_root,
        model_name=MODEL_NAME,
        pacs_url=pacs.dicomweb,
        pacs_outbox_dir=tmp_path / "outbox",
        pacs_retry_min_s=0.2,
        pacs_retry_max_s=1.0,
    )


def pacs_status(live: LiveServer) -> dict[str, Any]:
    status: dict[str, Any] = httpx.get(f"{live.http}/readyz").json()["pacs"]
    return status


def wait_delivered(live: LiveServer, scans: int) -> dict[str, Any]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while (status := pacs_status(live))["delivered"] < scans or status["waiting"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def latest_session(live: LiveServer) -> dict[str, Any]:
    listing = httpx.get(f"{live.http}/sessions").json()["sessions"]
    report: dict[str, Any] = httpx.get(f"{live.http}{listing[0]['url']}").json()
    return report


def check_record(stored: list[pydicom.Dataset], cine: pydicom.Dataset, report: dict[str, Any]) -> None:
    """Orthanc holds, in the cine's study and patient, one SC per capture (pairwise distinct pixels) and one SR
    that references each of them and states the model, its version and the verdicts."""
    captures = [d for d in stored if d.SOPClassUID == SC_CLASS]
    reports = [d for d in stored if d.SOPClassUID == SR_CLASS]
    assert len(reports) == 1 and len(captures) == len(report["captures"]) >= 2, report["summary_text"]
    for dataset in stored:
        assert dataset.StudyInstanceUID == cine.StudyInstanceUID
        assert (
            dataset.PatientID == PATIENT["PatientID"] and str(dataset.PatientName) == PATIENT["PatientName"]
        )
        assert dataset.AccessionNumber == PATIENT["AccessionNumber"]
        assert all(is_uid(str(u)) for u in (dataset.SOPInstanceUID, dataset.SeriesInstanceUID))
        assert dataset.Manufacturer == "usqa"
    assert {d.SeriesDescription for d in captures} == {CAPTURE_SERIES_DESCRIPTION}
    assert len({d.SeriesInstanceUID for d in captures}) == 1
    assert reports[0].SeriesDescription == REPORT_SERIES_DESCRIPTION
    for a, b in itertools.combinations([d.pixel_array for d in captures], 2):
        assert a.shape != b.shape or not np.array_equal(a, b)
    sr = reports[0]
    referenced = sr_image_references(sr)
    assert sorted(referenced) == sorted(d.SOPInstanceUID for d in captures)  # every reference resolves
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == cine.StudyInstanceUID
    texts = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in sr.ContentSequence}
    versions = report["model_versions"]
    assert texts["Task model"].TextValue.startswith(f"{MODEL_NAME} version {versions[-1]}")
    assert (
        "Among frames called good" in texts["Pass line"].TextValue
        or "not certified" in texts["Pass line"].TextValue
    )
    frames = {
        k: float(texts[f"Frames with verdict {k}"].MeasuredValueSequence[0].NumericValue)
        for k in report["verdict_seconds"]
    }
    assert sum(frames.values()) == report["frames"]["scored"]
    scores = sorted(float(c["score"]) for c in report["captures"])
    shown = sorted(
        float(item.MeasuredValueSequence[0].NumericValue)
        for best in sr.ContentSequence
        if best.ValueType == "CONTAINER"
        for item in best.ContentSequence
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeMeaning == "Display score"
    )
    assert shown == pytest.approx(scores)


def test_a_streamed_dicom_cine_lands_in_its_study_in_orthanc(
    registry_root: Path, tmp_path: Path, pacs: OrthancServer
) -> None:
    cine = us_cine(cine_frames(CINE_FRAMES, seed=5))
    path = write_cine(tmp_path / "cine.dcm", cine)
    with serve(create_app(pacs_settings(registry_root, tmp_path, pacs))) as live:
        assert main(["stream", str(path), "--url", live.ws, "--fps", "30", "--quiet"]) == 0
        wait_delivered(live, 1)
        report = latest_session(live)
        out = tmp_path / "export"
        assert main(["session", "export", report["session"], "--out", str(out), "--url", live.http]) == 0
    stored = pacs.datasets()
    check_record(stored, cine, report)
    exported = [pydicom.dcmread(p) for p in sorted(out.glob("*.dcm"))]
    # `usqa session export` writes the very objects the PACS holds.
    assert {d.SOPInstanceUID for d in exported} == {d.SOPInstanceUID for d in stored}


def test_objects_wait_while_orthanc_is_down_and_arrive_once_it_is_back(
    registry_root: Path, tmp_path: Path, pacs: OrthancServer
) -> None:
    cine = us_cine(cine_frames(CINE_FRAMES, seed=6))
    path = write_cine(tmp_path / "cine.dcm", cine)
    pacs.stop()
    with serve(create_app(pacs_settings(registry_root, tmp_path, pacs))) as live:
        # The scan itself is unaffected: the stream scores and ends normally.
        assert main(["stream", str(path), "--url", live.ws, "--fps", "30", "--quiet"]) == 0
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while (status := pacs_status(live))["state"] != "degraded":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        ready = httpx.get(f"{live.http}/readyz").json()
        assert ready["ready"] and "PACS degraded" in ready["detail"] and status["waiting"] == 1
        assert len(list((tmp_path / "outbox").iterdir())) == 1
        pacs.start()
        status = wait_delivered(live, 1)
        assert status["state"] == "ok" and status["refused"] == 0
        report = latest_session(live)
        metrics = httpx.get(f"{live.http}/metrics").text
    stored = pacs.datasets()
    check_record(stored, cine, report)
    # None twice: each object was stored once (and the PACS holds exactly the scan's objects).
    assert len(stored) == len(report["captures"]) + 1
    assert f"usqa_pacs_instances_delivered_total {float(len(stored))}" in metrics
    assert not [p for p in (tmp_path / "outbox").iterdir() if p.name != "refused"]


def test_a_cine_pushed_to_the_dicom_listener_lands_in_orthanc(
    registry_root: Path, tmp_path: Path, pacs: OrthancServer
) -> None:
    cine = us_cine(cine_frames(CINE_FRAMES, seed=7))
    outcomes: list[SeriesOutcome] = []
    with serve(create_app(pacs_settings(registry_root, tmp_path, pacs))) as live:
        listener = DicomListener(live.ws, host="127.0.0.1", port=0, on_series=outcomes.append).start()
        try:
            scu = AE(ae_title="SCANNER")
            scu.add_requested_context(US_MULTIFRAME)
            association = scu.associate("127.0.0.1", listener.port, ae_title="USQA")
            assert association.is_established
            status = association.send_c_store(cine)
            assert status.Status == 0x0000
            association.release()
            deadline = time.monotonic() + DELIVERY_TIMEOUT_S
            while not outcomes:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            listener.stop()
        outcome = outcomes[0]
        assert outcome.error is None and outcome.frames == CINE_FRAMES
        assert outcome.report is not None and outcome.report.summary is not None
        wait_delivered(live, 1)
        report = latest_session(live)
        assert report["session"] == outcome.report.summary["session"]
        # The listener named the instance it streamed: the report traces the frames to it.
        assert report["dicom"] == [
            {
                "study_instance_uid": cine.StudyInstanceUID,
                "series_instance_uid": cine.SeriesInstanceUID,
                "sop_instance_uid": cine.SOPInstanceUID,
            }
        ]
    check_record(pacs.datasets(), cine, report)
