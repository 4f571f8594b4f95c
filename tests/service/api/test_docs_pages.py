"""/docs and /redoc in a real Chromium: they render, and nothing is fetched from another host."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Browser, Request

from ..conftest import LiveServer
from .live_browser import WAIT_MS

LOCAL_SCHEMES = ("data", "blob", "about")


def foreign(url: str, server: LiveServer) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return False
    return (parts.hostname, parts.port) != (server.host, server.port)


def test_swagger_ui_renders_from_local_assets_only(browser: Browser, shared_server: LiveServer) -> None:
    page = browser.new_page()
    attempts: list[str] = []
    page.on("request", lambda request: attempts.append(request.url))
    page.on("requestfailed", lambda request: attempts.append(request.url))
    page.goto(shared_server.http + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=WAIT_MS)
    assert "/assess" in page.inner_text("#swagger-ui")
    page.wait_for_load_state("networkidle")
    assert any(url.endswith("/docs-assets/swagger-ui-bundle.js") for url in attempts)
    assert [url for url in attempts if foreign(url, shared_server)] == []
    page.close()


def test_redoc_renders_and_its_vendor_logo_is_blocked(browser: Browser, shared_server: LiveServer) -> None:
    page = browser.new_page()
    attempts: list[str] = []
    finished: list[str] = []
    blocked: list[tuple[str, str | None]] = []
    page.on("request", lambda request: attempts.append(request.url))
    page.on("requestfinished", lambda request: finished.append(request.url))

    def failed(request: Request) -> None:
        blocked.append((request.url, request.failure))

    page.on("requestfailed", failed)
    page.goto(shared_server.http + "/redoc")
    page.wait_for_selector("h1", timeout=WAIT_MS)
    page.wait_for_load_state("networkidle")
    assert "usqa" in page.inner_text("h1")
    assert "/assess" in page.content()
    # ReDoc's sidebar asks for its vendor's logo; the page's Content-Security-Policy stops it in the browser,
    # so the attempt never reaches the network. Nothing else is even attempted elsewhere.
    assert [url for url in finished if foreign(url, shared_server)] == []
    stopped = {url for url, failure in blocked if failure == "csp"}
    assert {url for url in attempts if foreign(url, shared_server)} <= stopped
    page.close()
