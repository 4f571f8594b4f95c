"""Real DICOM cines for the PACS tests: simulated prostate sweeps as Ultrasound Multi-frame Image objects, with
a patient and a study, the way a scanner writes them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from usqa.service.simulator import simulate_cine

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
PATIENT = {
    "PatientID": "USQA-TEST-7",
    "PatientName": "Test^Patient",
    "PatientBirthDate": "19600101",
    "PatientSex": "M",
    "AccessionNumber": "ACC0042",
    "StudyID": "S42",
    "StudyDate": "20261206",
    "StudyTime": "101500",
    "ReferringPhysicianName": "Referrer^Doctor",
}


def cine_frames(frames: int, seed: int) -> np.ndarray:
    return np.stack([f.image for f in simulate_cine("transrectal_prostate", frames, seed=seed)])


def us_cine(frames: np.ndarray, *, study_uid: str | None = None, fps: float = 30.0) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = US_MULTIFRAME
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.Modality = "US"
    dataset.Manufacturer = "usqa test scanner"
    for keyword, value in PATIENT.items():
        setattr(dataset, keyword, value)
    dataset.FrameTime = 1000.0 / fps
    dataset.NumberOfFrames = len(frames)
    dataset.set_pixel_data(np.ascontiguousarray(frames), "MONOCHROME2", 8, generate_instance_uid=False)
    return dataset


def write_cine(path: Path, dataset: Dataset) -> Path:
    dataset.save_as(path, enforce_file_format=True)
    return path


def cine_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
