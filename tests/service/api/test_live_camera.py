"""The live page on a camera: Chromium's fake capture device plays the simulator's cine, drawn inside a
"scanner screen" (text and a ruler around the image, as a capture card on the scanner's video output
shows it), opened as /?source=camera with the scan region's crop; verdicts, the capture strip, the large
type, the report, and the session listed by GET /sessions."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
from playwright.sync_api import Page

from usqa.service.api import create_app
from usqa.service.simulator.cine import simulate_cine

from ..conftest import make_settings, serve
from .live_browser import WAIT_MS, chromium, finished, open_page, scored_at_least

SCREEN = (480, 640)  # the capture card's picture: height, width
IMAGE_AT = (96, 160)  # top-left corner of the scan image on that screen
IMAGE_SIZE = 256
# The scan region as the page takes it in the URL: x, y, width, height in percent of the picture.
CROP = "25,20,40,53.3334"
CINE_FRAMES = 48


def scanner_screen(image: np.ndarray, index: int) -> np.ndarray:
    """A frame as a scanner's screen shows it: the image scaled up, with text and a depth ruler around."""
    screen = np.full(SCREEN, 12, np.uint8)
    y, x = IMAGE_AT
    screen[y : y + IMAGE_SIZE, x : x + IMAGE_SIZE] = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE))
    cv2.putText(screen, f"PROSTATE  TRV  FR {index:03d}", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 230, 2)
    cv2.putText(screen, "MI 0.9  TIS 0.3  G 52", (430, 460), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 230, 1)
    for depth in range(0, IMAGE_SIZE, 32):
        cv2.line(screen, (x + IMAGE_SIZE + 8, y + depth), (x + IMAGE_SIZE + 20, y + depth), 255, 2)
    return screen


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    """Gray frames as a 4:2:0 YUV4MPEG2 file, luma in video range (Chromium converts it back to 0-255)."""
    height, width = frames[0].shape
    with path.open("wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420\n".encode())
        chroma = np.full((height // 2) * (width // 2) * 2, 128, np.uint8).tobytes()
        for frame in frames:
            luma = (16 + frame.astype(np.float32) * (219 / 255)).round().astype(np.uint8)
            file.write(b"FRAME\n" + luma.tobytes() + chroma)


def test_a_capture_card_as_camera_streams_its_scan_region_and_keeps_the_best_frames(
    registry_root: Path, tmp_path: Path
) -> None:
    cine = [f.image for f in simulate_cine("transrectal_prostate", CINE_FRAMES, seed=3)]
    video = tmp_path / "scanner.y4m"
    write_y4m(video, [scanner_screen(image, i) for i, image in enumerate(cine)])
    fake_camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    settings = make_settings(registry_root, capture_spacing_s=0.3)
    with serve(create_app(settings)) as live, chromium(fake_camera) as browser:
        page, problems = open_page(browser, live, f"/?source=camera&crop={CROP}")
        scored_at_least(page, 20)
        # Only the scan region went to the service: the hello declared the crop's size, not the screen's.
        assert page.evaluate("state.helloSize") == [IMAGE_SIZE, IMAGE_SIZE]
        assert page.is_visible("#crop-panel")
        assert page.input_value("#crop-w") == "40.0"
        assert page.get_attribute("#gauge", "data-guidance") in {
            "good",
            "adjust",
            "no_signal",
            "out_of_scope",
        }
        page.wait_for_function(
            "Number(document.getElementById('capture-strip').dataset.count) >= 1", timeout=WAIT_MS
        )
        strip_png = page.get_attribute("#capture-strip figure a", "href") or ""
        assert strip_png.startswith("data:image/png;base64,")
        assert page.evaluate("document.querySelector('#capture-strip img').naturalWidth") == IMAGE_SIZE

        check_large_type(page)

        page.click("#stop")
        summary = finished(page)
        assert "frames received" in summary
        page.wait_for_function(
            "document.getElementById('report-text').textContent.includes('usable')", timeout=WAIT_MS
        )
        report_text = page.inner_text("#report-text")
        page.wait_for_selector("#report-captures figure img", timeout=WAIT_MS)
        session = page.get_attribute("#report", "data-session")

        listed = httpx.get(f"{live.http}/sessions", timeout=10).json()["sessions"]
        mine = [s for s in listed if s["session"] == session]
        assert mine and mine[0]["captures"] >= 1 and mine[0]["status"] == "finished"
        report = httpx.get(f"{live.http}/sessions/{session}", timeout=10).json()
        assert report["summary_text"] == report_text
        png = httpx.get(f"{live.http}{report['captures'][0]['url']}", timeout=10)
        assert png.headers["content-type"] == "image/png"
        best = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert best.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE)
        assert problems == []
        page.close()


def check_large_type(page: Page) -> None:
    """The verdict fills the window as a word on its colour, and leaves with Escape."""
    page.click("#large-type")
    assert page.is_visible("#large")
    word, verdict = page.evaluate(
        "[document.getElementById('large-word').textContent, document.getElementById('large').dataset.verdict]"
    )
    assert word in {"good", "adjust", "no signal", "out of scope"} and verdict == word.replace(" ", "_")
    size = page.eval_on_selector("#large-word", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 64
    page.keyboard.press("Escape")
    page.wait_for_selector("#large", state="hidden", timeout=WAIT_MS)
