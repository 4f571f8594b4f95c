"""A finished session as a `ScanDocument`: its study, its model, its verdicts and its captures' pixels.

The study is, in order: the one the client's hello named (with its patient fields), else the study of the
DICOM instances the frames came from, else a study of usqa's own whose UID is derived from the session.
"""

from __future__ import annotations

import cv2
import numpy as np

from usqa.service.frames.dicom_uids import StudyIdentity
from usqa.service.live.session_store import SessionRecord
from usqa.service.record.dicom_objects import CaptureImage, ScanDocument, derived_uid

MSG_CAPTURE_UNREADABLE = "capture {rank} of session {session} could not be read back from its PNG"


def study_of(record: SessionRecord) -> StudyIdentity:
    fields = dict(record.study_fields)
    uid = fields.pop("study_instance_uid", None)
    if uid is None and record.dicom:
        uid = record.dicom[0].study_instance_uid
    return StudyIdentity(uid or derived_uid(record.session_id, "study"), **fields)


def capture_pixels(png: bytes) -> np.ndarray:
    """A capture's PNG as 8-bit grey (H, W) or RGB (H, W, 3) pixels, as DICOM wants them."""
    image = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a PNG")
    if image.dtype != np.uint8:  # a 16-bit PNG: its top byte
        image = (image // 256).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def scan_document(record: SessionRecord, *, model_name: str, task: str, promise: str) -> ScanDocument:
    """The document of a finished session (reads each capture's PNG: run it in a thread)."""
    report = record.report()
    captures = []
    for rank, capture in enumerate(record.keeper.captures):
        try:
            pixels = capture_pixels(capture.png())
        except (ValueError, RuntimeError) as exc:
            raise ValueError(MSG_CAPTURE_UNREADABLE.format(rank=rank, session=record.session_id)) from exc
        captures.append(
            CaptureImage(rank, capture.frame, capture.time_s, capture.score, str(capture.verdict), pixels)
        )
    return ScanDocument(
        session_id=record.session_id,
        study=study_of(record),
        started_at=record.started_at,
        model_name=model_name,
        model_versions=list(record.stats.versions),
        task=task,
        promise=promise,
        summary_text=report["summary_text"],
        frames_scored=record.stats.scored,
        verdict_seconds={str(k): v for k, v in record.verdict_seconds.items()},
        verdict_frames={str(k): v for k, v in record.stats.guidance_frames.items()},
        captures=captures,
    )
