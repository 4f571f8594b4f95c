"""The live page takes the /ws/scan protocol's words from the service (/protocol.js), never re-typing them."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser

from usqa.contracts.protocol import REASONS, VERDICTS, page_constants
from usqa.service.api.routes.live import PROTOCOL_SCRIPT, STATIC_DIR

from ..conftest import LiveServer
from .live_browser import open_page


def test_the_page_loads_the_protocol_before_its_scripts(browser: Browser, shared_server: LiveServer) -> None:
    script = httpx.get(shared_server.http + PROTOCOL_SCRIPT, timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    page, problems = open_page(browser, shared_server)
    try:
        assert page.evaluate("USQA_PROTOCOL") == page_constants()
        assert page.evaluate("Object.keys(LOOKS)") == list(VERDICTS)
        assert problems == []
    finally:
        page.close()


def test_no_script_or_style_of_the_page_types_a_verdict_or_a_reason() -> None:
    words = [*VERDICTS, *REASONS]
    # A quoted word, or a word as an object key (CSS custom properties such as `--good` name colours).
    typed = re.compile(r"""["'`]({0})["'`]|(?<![-\w])({0})\s*:""".format("|".join(words)))
    found = {
        path.name: sorted({m.group(1) or m.group(2) for m in typed.finditer(path.read_text())})
        for path in [*STATIC_DIR.glob("*.js"), *STATIC_DIR.glob("*.css")]
    }
    assert {name: hits for name, hits in found.items() if hits} == {}
