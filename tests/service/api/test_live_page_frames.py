"""The live page shows each frame under its own verdict (issue #26 item 5): a file's frame is drawn when its
result arrives, not when it is sent."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser

from usqa.service.api import create_app

from ..conftest import FIXTURE_MODEL_NAME, dicom_bytes, frame_of_level, make_settings, serve
from .live_browser import WAIT_MS, open_page

LEVELS = [30 if i % 3 == 0 else 200 for i in range(45)]  # dark frames among bright ones

FINISHED = f"document.getElementById('summary').textContent.includes('{len(LEVELS)} frames received')"
SAMPLE = """() => {
  const c = document.getElementById('frame-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let sum = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 0) { sum += d[i]; n += 1; }
  return [document.getElementById('gauge').dataset.seq ?? null, c.dataset.seq ?? null, n ? sum / n : 0];
}"""


def test_a_frame_is_drawn_with_its_own_verdict(browser: Browser, registry_root: Path) -> None:
    cine = dicom_bytes([frame_of_level(v, shape=(64, 64), seed=i) for i, v in enumerate(LEVELS)])
    settings = make_settings(registry_root, model_name=FIXTURE_MODEL_NAME)
    with serve(create_app(settings)) as live:
        page, problems = open_page(browser, live)
        page.set_input_files(
            "#file-input", files=[{"name": "cine.dcm", "mimeType": "application/dicom", "buffer": cine}]
        )
        samples = []
        while len(samples) < 200:
            answered, drawn, brightness = page.evaluate(SAMPLE)
            if answered is not None:
                samples.append((int(answered), drawn and int(drawn), brightness))
            if page.evaluate(FINISHED):
                break
            page.wait_for_timeout(15)
        page.wait_for_function(FINISHED, timeout=WAIT_MS)
        assert problems == []
        page.close()
    assert len({s[0] for s in samples}) >= 5, samples  # sampled across the cine
    for answered, drawn, brightness in samples:
        assert drawn == answered  # the picture on screen is the answered frame...
        assert (brightness > 120) == (LEVELS[answered] > 120), (answered, brightness)  # ...and looks it


def test_large_type_before_a_stream_can_start_one(browser: Browser, registry_root: Path) -> None:
    with serve(create_app(make_settings(registry_root, demo_frames=20))) as live:
        page, problems = open_page(browser, live, "/?large=1")
        assert (
            page.is_visible("#large") and page.is_visible("#large-demo") and page.is_visible("#large-camera")
        )
        page.click("#large-demo")  # on the overlay: Play and Camera underneath are covered
        page.wait_for_function(
            "Number(document.getElementById('frames-scored').textContent) >= 3", timeout=WAIT_MS
        )
        assert page.is_visible("#large") and not page.is_visible("#large-start")
        assert page.inner_text("#large-word").lower() in {"good", "adjust", "no signal", "out of scope"}
        assert page.is_hidden("#crop-panel")  # a file is scored whole: the camera's crop has no say
        assert problems == []
        page.close()
