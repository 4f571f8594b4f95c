"""The live page's exam picker (issue #27) in a real Chromium: it lists the served exams and switches the
stream's model mid-session."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser

from usqa.service.api import create_app

from ..conftest import FIXTURE_MODEL_NAME, MODEL_NAME, make_settings, serve
from .live_browser import WAIT_MS, open_page, scored_at_least


def test_the_exam_picker_switches_the_served_model_mid_session(browser: Browser, registry_root: Path) -> None:
    settings = make_settings(registry_root, model_names=(FIXTURE_MODEL_NAME,), demo_frames=40)
    with serve(create_app(settings)) as live:
        page, problems = open_page(browser, live)
        page.wait_for_function("document.getElementById('exam').options.length === 2", timeout=WAIT_MS)
        assert page.input_value("#exam") == MODEL_NAME
        page.check("#loop")
        page.click("#play-demo")
        scored_at_least(page, 5)
        assert page.evaluate("state.lastResult.model.name") == MODEL_NAME
        page.select_option("#exam", FIXTURE_MODEL_NAME)
        page.wait_for_function(
            f"state.lastResult && state.lastResult.model.name === '{FIXTURE_MODEL_NAME}'", timeout=WAIT_MS
        )
        assert FIXTURE_MODEL_NAME in page.inner_text("#model-version")
        assert "exam changed" in page.evaluate("document.getElementById('swap-notice').textContent")
        page.click("#stop")
        assert problems == []
        page.close()
