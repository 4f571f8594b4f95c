"""The session's DICOM objects through the API: exported (and audited), and discarded from the outbox by a
deletion while the PACS is away."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import zipfile
from pathlib import Path

import httpx
import pydicom
import pytest

from usqa.cli import main
from usqa.client.stream import stream_frames
from usqa.service.api import create_app
from usqa.service.api.audit import AUDIT_LOGGER

from ...support.cines import cine_frames
from ...support.orthanc import free_port
from ..conftest import MODEL_NAME, make_settings, serve


def test_a_deleted_session_takes_its_waiting_objects_and_every_export_is_audited(
    registry_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    settings = make_settings(
        registry_root,
        model_name=MODEL_NAME,
        pacs_url=f"http://127.0.0.1:{free_port()}/dicom-web",  # nobody there: the parcel waits
        pacs_outbox_dir=outbox,
        pacs_retry_min_s=5.0,
    )
    frames = list(cine_frames(60, seed=9))
    study = {"study_instance_uid": "1.2.826.0.1.3680043.2.1125.9", "patient_id": "P-9"}
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    with serve(create_app(settings)) as live:
        report = asyncio.run(stream_frames(live.ws, frames, fps=30.0, study=study))
        session = report.summary["session"] if report.summary else ""
        deadline = time.monotonic() + 30
        while not [p for p in outbox.iterdir() if session in p.name]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        exported = httpx.get(f"{live.http}/sessions/{session}/dicom")
        assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            names = archive.namelist()
            sr = pydicom.dcmread(io.BytesIO(archive.read("report.dcm")))
        assert names[-1] == "report.dcm" and all(n.startswith("capture-") for n in names[:-1])
        assert (sr.StudyInstanceUID, sr.PatientID) == (study["study_instance_uid"], "P-9")
        assert httpx.delete(f"{live.http}/sessions/{session}").status_code == 204
        assert not [p for p in outbox.iterdir() if session in p.name]
        assert httpx.get(f"{live.http}/sessions/{session}/dicom").status_code == 404
        # The CLI says why it cannot export, and exits non-zero.
        assert main(["session", "export", session, "--out", str(tmp_path / "x"), "--url", live.http]) != 0
    actions = [(r.audit["action"], r.audit["outcome"]) for r in caplog.records if hasattr(r, "audit")]
    assert ("export_dicom", "ok") in actions and ("delete_session", "ok") in actions
    assert ("export_dicom", "not_found") in actions
