"""A finished scan as DICOM: each capture a Secondary Capture image, the session a Comprehensive SR.

Written with highdicom, the maintained writer of DICOM information objects. The objects go in the scan's
study (`ScanDocument.study`: the source DICOM's study and patient module, or the one the client named in its
hello, or a study of usqa's own when neither is known) as two new series, usqa's captures and usqa's report.
The SR states the software, the task model's name and version(s), the pass line's promise, the time and
frames in each verdict, and for each capture its score and verdict with a reference to the image; it lists
the captures as its evidence, so its references resolve in the archive.

Every UID is derived from the session id (`derived_uid`): exporting a session again, to the PACS or to a
folder, yields the same instances, and an archive that receives one twice stores it once.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import highdicom as hd
import numpy as np
from pydicom import Dataset

from usqa.contracts.protocol import VERDICTS
from usqa.contracts.version import __version__
from usqa.service.frames.dicom_uids import STUDY_KEYWORDS, StudyIdentity

MANUFACTURER = "usqa"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
SOFTWARE = f"usqa {__version__}"
CAPTURE_SERIES_NUMBER = 990
REPORT_SERIES_NUMBER = 991
CAPTURE_SERIES_DESCRIPTION = "usqa best frames"
REPORT_SERIES_DESCRIPTION = "usqa scan quality report"
# usqa's own concepts: a private coding scheme (PS3.16 section 8: designators beginning "99" are local).
SCHEME = "99USQA"
UNIT_SECOND = hd.sr.CodedConcept("s", "UCUM", "second")
UNIT_NONE = hd.sr.CodedConcept("1", "UCUM", "no units")
UNIT_FRAMES = hd.sr.CodedConcept("{frames}", "UCUM", "frames")
CONTAINS = hd.sr.RelationshipTypeValues.CONTAINS


def concept(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, SCHEME, meaning)


REPORT_TITLE = concept("scan-report", "Ultrasound scan quality report")
CONCEPTS = {
    "software": concept("software", "Software"),
    "model": concept("task-model", "Task model"),
    "promise": concept("pass-line", "Pass line"),
    "summary": concept("summary", "Summary"),
    "frames": concept("frames-scored", "Frames scored"),
    "best": concept("best-frame", "Best frame"),
    "image": concept("capture", "Captured frame"),
    "score": concept("display-score", "Display score"),
    "verdict": concept("verdict", "Verdict"),
    "time": concept("time-in-scan", "Time in scan"),
}


# The namespace of usqa's name-based UUIDs (a UUID of its own, fixed forever: changing it renames every object).
UID_NAMESPACE = uuid.UUID("5f0b7a36-8c1e-5d3a-9d7e-0a6b2c4e8f10")


def derived_uid(session_id: str, *parts: str | int) -> str:
    """A UID that the same session and role always give: a name-based (SHA-1) UUID under the 2.25 root
    (PS3.5 B.2), so exporting a session twice names its objects the same."""
    name = "/".join(["usqa", session_id, *map(str, parts)])
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


@dataclass(frozen=True)
class CaptureImage:
    """One kept frame: its place in the scan, its score and verdict, and its pixels (8-bit, grey or RGB)."""

    rank: int
    frame: int
    time_s: float
    score: float
    verdict: str
    pixels: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ScanDocument:
    """Everything the DICOM objects say about one finished scan."""

    session_id: str
    study: StudyIdentity
    started_at: float  # wall clock, seconds since the epoch
    model_name: str
    model_versions: Sequence[int]
    task: str
    promise: str
    summary_text: str
    frames_scored: int
    verdict_seconds: Mapping[str, float]
    verdict_frames: Mapping[str, int]
    captures: Sequence[CaptureImage]

    @property
    def capture_series_uid(self) -> str:
        return derived_uid(self.session_id, "captures")

    @property
    def report_series_uid(self) -> str:
        return derived_uid(self.session_id, "report")

    @property
    def report_uid(self) -> str:
        return derived_uid(self.session_id, "report", 1)

    def capture_uid(self, rank: int) -> str:
        return derived_uid(self.session_id, "capture", rank)


def capture_object(document: ScanDocument, capture: CaptureImage) -> hd.sc.SCImage:
    pixels = np.ascontiguousarray(capture.pixels, dtype=np.uint8)
    study = _patient_and_study(document.study, datetime.fromtimestamp(document.started_at, UTC))
    image = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation="MONOCHROME2" if pixels.ndim == 2 else "RGB",
        bits_allocated=8,
        # highdicom asks for an orientation in the patient frame; a probe's frame has none that usqa knows,
        # so the attribute (type 2C) is emptied below rather than left claiming one.
        coordinate_system="PATIENT",
        patient_orientation=("A", "F"),
        study_instance_uid=document.study.study_instance_uid,
        series_instance_uid=document.capture_series_uid,
        series_number=CAPTURE_SERIES_NUMBER,
        sop_instance_uid=document.capture_uid(capture.rank),
        instance_number=capture.rank + 1,
        manufacturer=MANUFACTURER,
        patient_id=study.get("patient_id"),
        patient_name=study.get("patient_name"),
        patient_birth_date=study.get("patient_birth_date"),
        patient_sex=study.get("patient_sex"),
        accession_number=study.get("accession_number"),
        study_id=study.get("study_id"),
        study_date=study.get("study_date"),
        study_time=study.get("study_time"),
        referring_physician_name=study.get("referring_physician_name"),
    )
    image["PatientOrientation"].value = None
    image.SeriesDescription = CAPTURE_SERIES_DESCRIPTION
    image.SoftwareVersions = SOFTWARE
    image.ImageComments = (
        f"usqa capture {capture.rank + 1} of session {document.session_id}: frame {capture.frame} at "
        f"{capture.time_s:.1f} s, score {capture.score:.3f}, {capture.verdict}"
    )
    return image


def _patient_and_study(study: StudyIdentity, started: datetime) -> dict[str, str]:
    fields: dict[str, str] = {k: v for k, v in study.fields().items() if k != "study_instance_uid"}
    # A study usqa opened itself is dated by the scan.
    fields.setdefault("study_date", started.strftime("%Y%m%d"))
    fields.setdefault("study_time", started.strftime("%H%M%S"))
    return fields


def report_object(document: ScanDocument, captures: Sequence[hd.sc.SCImage]) -> hd.sr.ComprehensiveSR:
    items: list[hd.sr.ContentItem] = [
        hd.sr.TextContentItem(CONCEPTS["software"], SOFTWARE, relationship_type=CONTAINS),
        hd.sr.TextContentItem(CONCEPTS["model"], model_words(document), relationship_type=CONTAINS),
        hd.sr.TextContentItem(CONCEPTS["promise"], document.promise, relationship_type=CONTAINS),
        hd.sr.TextContentItem(CONCEPTS["summary"], document.summary_text, relationship_type=CONTAINS),
        hd.sr.NumContentItem(
            CONCEPTS["frames"], document.frames_scored, UNIT_FRAMES, relationship_type=CONTAINS
        ),
    ]
    for verdict in VERDICTS:
        items.append(
            hd.sr.NumContentItem(
                concept(f"time-{verdict.value}"[:16], f"Time with verdict {verdict.value}"),
                round(float(document.verdict_seconds.get(verdict, 0.0)), 3),
                UNIT_SECOND,
                relationship_type=CONTAINS,
            )
        )
        items.append(
            hd.sr.NumContentItem(
                concept(f"frames-{verdict.value}"[:16], f"Frames with verdict {verdict.value}"),
                int(document.verdict_frames.get(verdict, 0)),
                UNIT_FRAMES,
                relationship_type=CONTAINS,
            )
        )
    for capture, image in zip(document.captures, captures, strict=True):
        best = hd.sr.ContainerContentItem(CONCEPTS["best"], relationship_type=CONTAINS)
        best.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.ImageContentItem(
                    CONCEPTS["image"],
                    referenced_sop_class_uid=image.SOPClassUID,
                    referenced_sop_instance_uid=image.SOPInstanceUID,
                    relationship_type=CONTAINS,
                ),
                hd.sr.NumContentItem(CONCEPTS["score"], capture.score, UNIT_NONE, relationship_type=CONTAINS),
                hd.sr.TextContentItem(CONCEPTS["verdict"], capture.verdict, relationship_type=CONTAINS),
                hd.sr.NumContentItem(
                    CONCEPTS["time"], capture.time_s, UNIT_SECOND, relationship_type=CONTAINS
                ),
            ]
        )
        items.append(best)
    root = hd.sr.ContainerContentItem(REPORT_TITLE)
    root.ContentSequence = hd.sr.ContentSequence(items)
    evidence: list[Dataset] = list(captures) or [_study_stub(document)]
    report = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=root,
        series_instance_uid=document.report_series_uid,
        series_number=REPORT_SERIES_NUMBER,
        sop_instance_uid=document.report_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        # Nobody verified it: usqa's verdicts, not a clinician's finding.
        is_final=False,
        is_verified=False,
    )
    if not captures:  # the stub is no evidence: an SR that references nothing lists none (type 1C)
        for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
            if keyword in report:
                delattr(report, keyword)
    report.SeriesDescription = REPORT_SERIES_DESCRIPTION
    report.SoftwareVersions = SOFTWARE
    return report


def _study_stub(document: ScanDocument) -> Dataset:
    """The patient and study modules alone, for an SR without captures (highdicom copies them from its
    evidence)."""
    started = datetime.fromtimestamp(document.started_at, UTC)
    stub = Dataset()
    stub.StudyInstanceUID = document.study.study_instance_uid
    # highdicom lists its evidence whatever it is; report_object removes that list again.
    stub.SeriesInstanceUID = document.capture_series_uid
    stub.SOPInstanceUID = document.capture_uid(0)
    stub.SOPClassUID = SC_CLASS
    keywords = {k: v for k, v in STUDY_KEYWORDS.items() if k != "study_instance_uid"}
    for name, value in _patient_and_study(document.study, started).items():
        setattr(stub, keywords[name], value)
    for keyword in keywords.values():
        if keyword not in stub:
            setattr(stub, keyword, None)
    return stub


def model_words(document: ScanDocument) -> str:
    versions = ", ".join(str(v) for v in document.model_versions) or "none"
    label = "version" if len(document.model_versions) <= 1 else "versions"
    return f"{document.model_name} {label} {versions} ({document.task})"


def scan_objects(document: ScanDocument) -> list[Dataset]:
    """The scan's objects, captures first (best first), then the SR that references them."""
    captures = [capture_object(document, c) for c in document.captures]
    return [*captures, report_object(document, captures)]


def encode(dataset: Dataset) -> bytes:
    """A DICOM Part 10 file's bytes."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
