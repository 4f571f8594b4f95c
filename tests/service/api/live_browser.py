"""A real headless Chromium (Debian's) for the live-page tests, and what they wait for on the page."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..conftest import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


@contextlib.contextmanager
def chromium(extra_args: list[str] | None = None) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("the live-page tests need Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + (extra_args or []), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, server: LiveServer, path: str = "/") -> tuple[Page, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.goto(server.http + path)
    return page, problems


def scored_at_least(page: Page, count: int) -> None:
    page.wait_for_function(
        f"Number(document.getElementById('frames-scored').textContent) >= {count}", timeout=WAIT_MS
    )


def finished(page: Page) -> str:
    """Wait for the session report; the engineering figures folded under it, as text."""
    page.wait_for_selector("#report:not([hidden])", timeout=WAIT_MS)
    return str(page.eval_on_selector("#summary", "e => e.textContent"))
