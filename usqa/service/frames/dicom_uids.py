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


def read_instance_uids(source: bytes | Path) -> InstanceUids | None:
    """The three UIDs of a DICOM file (bytes or a path), or None when it is not DICOM or lacks them."""
    try:
        if isinstance(source, Path):
            with source.open("rb") as file:
                head = file.read(SNIFF_LENGTH)
        else:
            head = source[:SNIFF_LENGTH]
        if head[DICOM_PREAMBLE_LENGTH:SNIFF_LENGTH] != DICOM_MAGIC:
            return None
        stream = source if isinstance(source, Path) else io.BytesIO(source)
        dataset = pydicom.dcmread(stream, stop_before_pixels=True)
        values = [
            str(dataset.get(k, "")).strip()
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        ]
    except Exception:  # pydicom raises many types on bad headers; no identity is the honest answer
        return None
    if not all(is_uid(v) for v in values):
        return None
    return InstanceUids(*values)
