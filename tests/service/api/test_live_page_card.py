"""The live page's model-card panel, and the page at 800 px wide, in a real Chromium."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser

from usqa.service.registry import ModelRegistry
from usqa.service.registry.card import CARD_JSON, FROM_MANIFEST_NOTE

from ..conftest import MODEL_NAME, LiveServer, served_version
from .live_browser import WAIT_MS

NARROW = {"width": 800, "height": 600}


def test_the_served_models_card_is_shown_and_the_page_fits_800_px(
    browser: Browser,
    shared_server: LiveServer,
    source_registry: Path,
    tmp_path: Path,
) -> None:
    page = browser.new_page(viewport=NARROW)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(shared_server.http + "/")
    page.wait_for_selector("#card-body article.model-card", state="attached", timeout=WAIT_MS)
    version = served_version(source_registry)
    assert page.inner_text("#card-title") == f"{MODEL_NAME} v{version}"
    assert not page.is_visible("#card-body")  # collapsed until asked for
    page.click("#card-panel > summary")
    body = page.inner_text("#card-body")
    assert f"Model card: {MODEL_NAME} version {version}" in body
    assert "not a medical device" in body and "Intended use" in body and "How to regenerate" in body
    # The version's own published card; one built from the manifest only when it has none.
    published = CARD_JSON in ModelRegistry(source_registry).manifest(MODEL_NAME, version).files
    assert (FROM_MANIFEST_NOTE in body) is not published
    # Nothing wider than the window: no horizontal scrolling at 800 px, the frame and gauge side by side.
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    canvas = page.locator("#frame-canvas").bounding_box()
    gauge = page.locator(".panel").bounding_box()
    assert canvas is not None and gauge is not None and canvas["x"] + canvas["width"] <= gauge["x"]
    assert gauge["x"] + gauge["width"] <= NARROW["width"]
    page.screenshot(path=str(tmp_path / "live-page-800.png"), full_page=True)
    assert problems == []
    page.close()
