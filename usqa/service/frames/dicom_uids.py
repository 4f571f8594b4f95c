"""The identity of a DICOM instance (Study, Series and SOP Instance UIDs), read from its header alone.

A session report names the DICOM objects its frames came from, so a sonographer's captures can be traced
back to the study in the PACS. Only the header is parsed (`stop_before_pixels`); a file without the three
UIDs, or with malformed ones, has no identity here rather than a wrong one.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import pydicom

from usqa.service.frames.headers import DICOM_MAGIC, DICOM_PREAMBLE_LENGTH, SNIFF_LENGTH

# PS3.5 section 9: digits and dots, no leading zero in a component, at most 64 characters.
UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
UID_MAX_LENGTH = 64


@dataclass(frozen=True)
class InstanceUids:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str


def is_uid(value: str) -> bool:
    return len(value) <= UID_MAX_LENGTH and UID_PATTERN.match(value) is not None


def _read_header(source: bytes | Path) -> pydicom.Dataset | None:
    """A DICOM file's header (pixels not read), or None when it is not DICOM or pydicom cannot parse it."""
    try:
        if isinstance(source, Path):
            with source.open("rb") as file:
                head = file.read(SNIFF_LENGTH)
        else:
            head = source[:SNIFF_LENGTH]
        if head[DICOM_PREAMBLE_LENGTH:SNIFF_LENGTH] != DICOM_MAGIC:
            return None
        stream = source if isinstance(source, Path) else io.BytesIO(source)
        return pydicom.dcmread(stream, stop_before_pixels=True)
    except Exception:  # pydicom raises many types on bad headers; no identity is the honest answer
        return None


def _text(dataset: pydicom.Dataset, keyword: str) -> str:
    try:
        return str(dataset.get(keyword, "") or "").strip()
    except Exception:  # a value pydicom cannot convert is no value
        return ""


def read_instance_uids(source: bytes | Path) -> InstanceUids | None:
    """The three UIDs of a DICOM file (bytes or a path), or None when it is not DICOM or lacks them."""
    dataset = _read_header(source)
    if dataset is None:
        return None
    values = [_text(dataset, k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    if not all(is_uid(v) for v in values):
        return None
    return InstanceUids(*values)


# -- the study a scan belongs to (issue #26): where usqa files its captures and report ------------------------

# Value representations of the patient and study attributes usqa copies (PS3.5 section 6.2): the longest
# value, and the pattern a value must match. PN, LO and SH forbid the backslash (a value separator) and
# control characters; DA is YYYYMMDD; TM is HH[MM[SS[.F{1,6}]]]; CS sex is M, F or O.
_TEXT = r"[^\\\x00-\x1f\x7f]*"
STUDY_FIELD_RULES: dict[str, tuple[int, str]] = {
    "patient_id": (64, _TEXT),
    "patient_name": (64 * 3 + 2, _TEXT),  # three component groups of 64, joined by '='
    "patient_birth_date": (8, r"[0-9]{8}"),
    "patient_sex": (1, r"[MFO]"),
    "accession_number": (16, _TEXT),
    "study_id": (16, _TEXT),
    "study_date": (8, r"[0-9]{8}"),
    "study_time": (13, r"[0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?"),
    "referring_physician_name": (64 * 3 + 2, _TEXT),
}
_STUDY_FIELD_PATTERNS = {name: re.compile(pattern) for name, (_, pattern) in STUDY_FIELD_RULES.items()}
# The DICOM keyword of each field.
STUDY_KEYWORDS = {
    "study_instance_uid": "StudyInstanceUID",
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "accession_number": "AccessionNumber",
    "study_id": "StudyID",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "referring_physician_name": "ReferringPhysicianName",
}


def valid_study_field(name: str, value: str) -> bool:
    """Whether `value` is a valid value of study field `name` (its VR's length and characters)."""
    if name == "study_instance_uid":
        return is_uid(value)
    longest, _ = STUDY_FIELD_RULES[name]
    return 0 < len(value) <= longest and _STUDY_FIELD_PATTERNS[name].fullmatch(value) is not None


@dataclass(frozen=True)
class StudyIdentity:
    """The study a scan belongs to: its UID and, where known, the patient and study modules' main fields."""

    study_instance_uid: str
    patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    accession_number: str | None = None
    study_id: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    referring_physician_name: str | None = None

    def fields(self) -> dict[str, str]:
        """The known fields by name (None left out)."""
        return {k: v for k, v in vars(self).items() if v is not None}


def read_study_identity(source: bytes | Path) -> StudyIdentity | None:
    """The study of a DICOM file (header only), or None when it is not DICOM or has no valid Study UID.

    A field whose value is not valid for its VR is left out rather than copied: usqa's objects must not
    carry a malformed patient module into the archive."""
    dataset = _read_header(source)
    if dataset is None:
        return None
    values = {name: _text(dataset, keyword) for name, keyword in STUDY_KEYWORDS.items()}
    if not valid_study_field("study_instance_uid", values["study_instance_uid"]):
        return None
    kept = {k: v for k, v in values.items() if k != "study_instance_uid" and v and valid_study_field(k, v)}
    return StudyIdentity(values["study_instance_uid"], **kept)
