"""What a user tries through the proxy: /readyz, /assess (PNG, DICOM), /ws/scan, /metrics, an upload."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.compose_test.config import PRESET, SCAN_SECONDS
from scripts.compose_test.engine import Stack
from scripts.compose_test.shell import Failed
from usqa.client import AsyncClient, StreamReport, UsqaError
from usqa.client.archives import zip_folder


def png_frame(size: int = 128) -> bytes:
    import cv2

    from usqa.service.simulator import simulate_cine

    ok, data = cv2.imencode(".png", next(iter(simulate_cine(PRESET, 1, seed=5, size=size))).image)
    assert ok
    return bytes(data.tobytes())


def dicom_frames(size: int = 128, frames: int = 3) -> bytes:
    """A small ultrasound cine as a DICOM file (what a scanner exports)."""
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    from usqa.service.simulator import simulate_cine

    pixels = np.stack([f.image for f in simulate_cine(PRESET, frames, seed=6, size=size)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.3.1")  # Ultrasound Multi-frame Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise Failed(f"{what}: {response.status_code} instead of {status}: {response.text[:500]}")
    body: dict[str, Any] = response.json() if "json" in response.headers.get("content-type", "") else {}
    return body


def check_user_paths(stack: Stack) -> dict[str, Any]:
    """/readyz, /assess (PNG, DICOM), /ws/scan, /metrics and the token, all through the proxy."""
    from usqa.service.simulator import simulate_cine

    with stack.client() as c:
        ready = expect(c.get("/readyz"), 200, "GET /readyz")
        png = expect(
            c.post("/assess", content=png_frame(), headers={"Content-Type": "image/png"}), 200, "PNG"
        )
        dicom = expect(
            c.post("/assess", content=dicom_frames(), headers={"Content-Type": "application/dicom"}),
            200,
            "DICOM",
        )
        with stack.client(token=False) as anonymous:
            expect(anonymous.get("/jobs"), 401, "GET /jobs without the token")
    frames = [f.image for f in simulate_cine(PRESET, 30, seed=7, size=128)]
    deadline = time.monotonic() + SCAN_SECONDS

    async def play() -> StreamReport:
        async with AsyncClient(stack.base, token=stack.token) as usqa:
            return await usqa.play(frames, fps=15, until=lambda: time.monotonic() > deadline)

    report = asyncio.run(asyncio.wait_for(play(), SCAN_SECONDS + 60))
    if report.results == 0 or report.errors:
        raise Failed(f"/ws/scan: {report.results} results, {report.errors} errors")
    metrics = httpx.get(f"{stack.base}/metrics", timeout=30)
    if metrics.status_code != 200 or "usqa_inference_count_total" not in metrics.text:
        raise Failed(f"/metrics: {metrics.status_code}")
    return {
        "version": ready["model"]["version"],
        "png_frames": len(png["frames"]),
        "dicom_frames": len(dicom["frames"]),
        "scan_results": report.results,
        "scan_p99_ms": report.percentiles.get("p99"),
    }


def upload_dataset(stack: Stack, root: Path) -> str:
    from usqa.service.simulator import write_dataset

    write_dataset(root / "data", frames=240, subjects=12, seed=3, size=64, preset=PRESET, force=True)
    archive = zip_folder(root / "data", root / "data.zip")
    try:
        with stack.usqa() as usqa:
            dataset = usqa.upload(archive)
    except UsqaError as exc:
        raise Failed(f"upload: {exc}") from exc
    if not dataset.created:
        raise Failed(f"upload: data set {dataset.id} was there before this run")
    return dataset.id
