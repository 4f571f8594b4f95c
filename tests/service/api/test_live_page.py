"""The live page in a real headless Chromium (Debian's): plays cines through /ws/scan and renders the scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from usqa.service.api import create_app
from usqa.service.registry import ModelRegistry

from ..conftest import (
    MODEL_NAME,
    SEGMENT_MODEL_NAME,
    dicom_bytes,
    frame_of_level,
    make_settings,
    png_bytes,
    serve,
)
from .live_browser import WAIT_MS, finished, open_page, scored_at_least

GUIDANCE_TEXTS = {"good", "adjust", "no signal"}


def test_the_demo_cine_a_dicom_cine_and_an_image_folder_play_and_render(
    browser: Browser, registry_root: Path, tmp_path: Path
) -> None:
    # The standard mix: its first frames are in scope, so the gauge and the prediction are there to read
    # (test_guidance_moves.py plays the default demo, with the views the model flags).
    with serve(create_app(make_settings(registry_root, demo_frames=20, demo_mix="standard"))) as live:
        page, problems = open_page(browser, live)
        page.click("#play-demo")
        scored_at_least(page, 8)
        manifest = ModelRegistry(registry_root).load(MODEL_NAME).manifest
        assert page.inner_text("#model-version").startswith(f"{MODEL_NAME} v{manifest.version}")
        assert page.inner_text("#guidance").lower() in GUIDANCE_TEXTS
        assert 0.0 <= float(page.inner_text("#gauge-value")) <= 1.0
        assert page.get_attribute("#gauge", "data-guidance") in {"good", "adjust", "no_signal"}
        # Read together: the cine is still playing.
        guidance, prediction = page.evaluate(
            "[document.getElementById('gauge').dataset.guidance, "
            "document.getElementById('prediction').textContent]"
        )
        if guidance != "good":  # the task model's answer is not shown on a frame the meter does not trust
            assert prediction == "– (not trusted on this frame)"
        elif manifest.task == "classify":
            assert prediction.split(" ")[0] in manifest.class_names
        else:
            assert prediction.startswith(("mask", "no structure"))
        assert int(page.get_attribute("#timeline", "data-points") or 0) >= 8
        assert "server" in page.inner_text("#latency")
        # The frame is drawn: the canvas is not all black.
        lit = page.evaluate(
            """() => { const c = document.getElementById('frame-canvas');
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 20) n++; return n; }"""
        )
        assert lit > 1000
        summary = finished(page)
        assert "20 frames received" in summary and "failed" in summary

        # A DICOM cine the user picks: unpacked by the server, played through the socket.
        cine = dicom_bytes([frame_of_level(40 + 8 * i, shape=(80, 100), seed=i) for i in range(12)])
        page.set_input_files(
            "#file-input", files=[{"name": "cine.dcm", "mimeType": "application/dicom", "buffer": cine}]
        )
        page.wait_for_function(
            "document.getElementById('summary').hidden === false && "
            "document.getElementById('summary').textContent.includes('12 frames received')",
            timeout=WAIT_MS,
        )

        # A folder of images, decoded by the browser and sent as raw frames.
        folder = tmp_path / "frames"
        folder.mkdir()
        for i in range(7):
            (folder / f"frame{i:02d}.png").write_bytes(
                png_bytes(frame_of_level(60 + 10 * i, shape=(50, 70), seed=i))
            )
        page.set_input_files("#folder-input", str(folder))
        page.wait_for_function(
            "document.getElementById('summary').textContent.includes('7 frames received')", timeout=WAIT_MS
        )
        assert problems == []
        page.close()


def test_segmentation_draws_the_mask_outline(browser: Browser, registry_root: Path) -> None:
    settings = make_settings(
        registry_root,
        model_name=SEGMENT_MODEL_NAME,
        target_rejection=0.15,
        demo_frames=12,
        demo_mix="standard",
    )
    with serve(create_app(settings)) as live:
        page, problems = open_page(browser, live)
        page.click("#play-demo")
        scored_at_least(page, 4)
        result: dict[str, Any] = page.evaluate("state.lastResult")
        assert result["prediction"]["task"] == "segment"
        assert page.inner_text("#prediction").startswith(("mask", "no structure"))
        finished(page)
        assert problems == []
        page.close()
