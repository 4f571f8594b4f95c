"""The load of `bench.live_isolation`: the hostile upload, the uploaders, and a stream beside them.

The hostile upload is a DICOM of 8 JPEG 2000 frames of 4096x4096 zeros: a few kilobytes that decode to
exactly the default budget of decoded pixels (USQA_MAX_DECODED_PIXELS, 128 Mi), so the service decodes it
rather than refusing it, and each decode takes seconds (OpenJPEG, holding the GIL for a whole frame). The
uploaders post it to /assess over and over, as a hostile or merely careless client would; the stream is
`usqa.client`'s (`bench.latency_load.ws_streams`, `AsyncClient.play`).
"""

from __future__ import annotations

import asyncio
import collections
import io
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.latency_load import Result, ws_streams

HOSTILE_FRAMES = 8
HOSTILE_SIDE = 4096
# The uploads start this long before the stream, so that the stream opens with both already decoding.
LEAD_IN_S = 1.0
UPLOAD_TIMEOUT_S = 120.0


def hostile_dicom(frames: int = HOSTILE_FRAMES, side: int = HOSTILE_SIDE) -> bytes:
    """A Part 10 ultrasound multi-frame of `frames` JPEG 2000 frames of side x side zeros."""
    import numpy as np
    import pydicom
    from openjpeg import encode
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID, JPEG2000Lossless, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.3.1")  # ultrasound multi-frame
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEG2000Lossless
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.Rows = dataset.Columns = side
    dataset.NumberOfFrames = frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    codestream = encode(np.zeros((side, side), np.uint8))
    dataset.PixelData = encapsulate([codestream] * frames, has_bot=True)
    dataset["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class UploadTally:
    """What the uploaders got back: answers by HTTP status and the seconds each answered upload took."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    seconds: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "uploads_answered": sum(self.statuses.values()),
            "uploads_decoded": self.statuses.get(200, 0),
            "upload_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "upload_median_s": round(statistics.median(self.seconds), 2) if self.seconds else None,
        }


async def _keep_uploading(client: httpx.AsyncClient, url: str, data: bytes, tally: UploadTally) -> None:
    while True:
        started = time.perf_counter()
        response = await client.post(url, content=data, headers={"content-type": "application/dicom"})
        tally.statuses[response.status_code] += 1
        tally.seconds.append(time.perf_counter() - started)
        if response.status_code == 429:  # the lane's waiting room is full: back off as its Retry-After says
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))


async def stream_beside_uploads(
    base: str,
    payloads: list[bytes],
    hostile: bytes,
    uploaders: int,
    fps: float,
    duration: float,
    tally: UploadTally,
) -> Result:
    """One stream at `fps` for `duration` s while `uploaders` clients post `hostile` to /assess in a loop."""
    limits = httpx.Limits(max_connections=max(uploaders, 1))
    async with httpx.AsyncClient(limits=limits, timeout=UPLOAD_TIMEOUT_S) as client:
        tasks = [
            asyncio.create_task(_keep_uploading(client, base + "/assess", hostile, tally))
            for _ in range(uploaders)
        ]
        try:
            if tasks:
                await asyncio.sleep(LEAD_IN_S)
                for task in tasks:
                    if task.done():  # an uploader that failed before the stream began: say so now
                        task.result()
            return await ws_streams(base, payloads, 1, fps, duration)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
