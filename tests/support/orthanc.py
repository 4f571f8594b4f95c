"""A real PACS for the tests: Orthanc (Debian's `orthanc` and `orthanc-dicomweb`, installed by `make install`).

Each `OrthancServer` runs its own Orthanc on free ports with a generated configuration and storage folder;
`stop()` and `start()` restart the same archive (the tests take the PACS down in the middle of a scan).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT_S = 30.0
MISSING = "Orthanc with its DICOMweb plugin is not installed (make install adds orthanc and orthanc-dicomweb)"


def orthanc_available() -> bool:
    return Path(ORTHANC).is_file() and DICOMWEB_PLUGIN.is_file()


def require_orthanc() -> None:
    """Fail, not skip, where `make install` should have installed it: CI runs these tests."""
    if not orthanc_available():
        pytest.fail(MISSING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    def __init__(self, folder: Path) -> None:
        require_orthanc()
        self.folder = folder
        self.http_port, self.dicom_port = free_port(), free_port()
        storage = folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.config = folder / "orthanc.json"
        self.config.write_text(
            json.dumps(
                {
                    "Name": "usqa-test-pacs",
                    "StorageDirectory": str(storage),
                    "IndexDirectory": str(storage),
                    "HttpPort": self.http_port,
                    "DicomPort": self.dicom_port,
                    "DicomAet": "ORTHANC",
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "HttpServerEnabled": True,
                    "Plugins": [str(DICOMWEB_PLUGIN)],
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.rest}/dicom-web"

    def start(self) -> OrthancServer:
        with (self.folder / "orthanc.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [ORTHANC, str(self.config)], stdout=log, stderr=log, cwd=self.folder
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {self.process.returncode}; see {self.folder}/orthanc.log"
                )
            try:
                if httpx.get(f"{self.rest}/system", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    # -- reading back ------------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.rest}{path}", timeout=10.0)
        response.raise_for_status()
        return response.json()

    def instance_ids(self) -> list[str]:
        return list(self.get("/instances"))

    def dataset(self, instance_id: str) -> pydicom.Dataset:
        response = httpx.get(f"{self.rest}/instances/{instance_id}/file", timeout=10.0)
        response.raise_for_status()
        return pydicom.dcmread(io.BytesIO(response.content))

    def datasets(self) -> list[pydicom.Dataset]:
        return [self.dataset(i) for i in self.instance_ids()]

    def wait_for_instances(self, count: int, timeout_s: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            ids = self.instance_ids()
            if len(ids) >= count or time.monotonic() > deadline:
                return ids
            time.sleep(0.2)


def sr_image_references(sr: pydicom.Dataset) -> list[str]:
    """The SOP Instance UIDs an SR's best-frame containers reference, in order."""
    return [
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for best in sr.ContentSequence
        if best.ValueType == "CONTAINER"
        for item in best.ContentSequence
        if item.ValueType == "IMAGE"
    ]
