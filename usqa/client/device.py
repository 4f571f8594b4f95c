"""Frames from an OpenCV capture device (a capture card on the scanner's video output), newest first.

A reader thread reads the device as fast as it delivers and keeps only the newest frame; the sender takes
one whenever the service can take one (`ScanPacer`), so the service sees the scanner's present, never a
backlog. A file or an image sequence given as the device (`clip.avi`, `frames/%03d.png`) is read at a fixed
rate, as a live device would deliver it; device indexes and stream URLs (rtsp://...) deliver at their own.
The scanner's screen has text and rulers around the image: `crop=True` cuts each frame sent to its scan
region (`find_scan_region`) first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from usqa.service.frames import find_scan_region

MSG_CANNOT_OPEN = "cannot open capture device {device!r}"
# A device that delivers nothing for this long has stopped (unplugged, or a file at its end).
READ_STALL_S = 5.0


@dataclass(frozen=True)
class DeviceFrame:
    index: int  # frames read from the device so far, from 0 (frames never sent are counted too)
    image: np.ndarray  # uint8 grayscale


def open_device(device: str) -> cv2.VideoCapture:
    """An OpenCV capture: an integer is a device index, anything else a path, pattern or URL."""
    capture = cv2.VideoCapture(int(device)) if device.isdigit() else cv2.VideoCapture(device)
    if not capture.isOpened():
        capture.release()
        raise OSError(MSG_CANNOT_OPEN.format(device=device))
    return capture


def is_recording(device: str) -> bool:
    """A file or image-sequence pattern rather than a live device or a network stream."""
    return not device.isdigit() and "://" not in device


def to_gray(image: np.ndarray) -> np.ndarray:
    """OpenCV delivers BGR (or already gray) frames; the service wants 8-bit grayscale."""
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return np.ascontiguousarray(image.reshape(image.shape[:2]))


def crop_to_scan(image: np.ndarray) -> np.ndarray:
    y0, y1, x0, x1 = find_scan_region(image)
    return np.ascontiguousarray(image[y0:y1, x0:x1])


class LatestFrameReader:
    """Reads a capture in a thread; `take` returns the newest frame not taken yet (older ones are skipped)."""

    def __init__(self, capture: cv2.VideoCapture, *, fps: float | None) -> None:
        self.capture = capture
        self.period = 1.0 / fps if fps else 0.0
        self.read = 0
        self._latest: DeviceFrame | None = None
        self._ended = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="usqa-device-reader", daemon=True)

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=READ_STALL_S)
        self.capture.release()

    def take(self, timeout: float = READ_STALL_S) -> DeviceFrame | None:
        """The newest unread frame, waiting up to `timeout` for one; None when the device has ended."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._latest is None and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            frame, self._latest = self._latest, None
            return frame

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                ok, image = self.capture.read()
                if not ok or image is None:
                    break
                frame = DeviceFrame(self.read, to_gray(image))
                with self._changed:
                    self._latest = frame
                    self._changed.notify_all()
                self.read += 1
                if self.period:  # a recording plays in real time, as the device it stands in for would
                    delay = started + self.read * self.period - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()
