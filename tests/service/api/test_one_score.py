"""One display score (issue #25): the same frames give the same number on the page, /assess, /ws/scan,
`usqa score`'s CSV and the client."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Browser

from usqa.cli import main
from usqa.client import Client
from usqa.service.api import create_app
from usqa.service.simulator import simulate_cine

from ..conftest import MODEL_NAME, make_settings, serve
from .live_browser import WAIT_MS, open_page


def test_the_page_assess_the_stream_the_csv_and_the_client_show_one_score(
    browser: Browser, registry_root: Path, tmp_path: Path
) -> None:
    images = [f.image for f in simulate_cine("transrectal_prostate", 4, seed=11)]
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"frame{i:02d}.png")
        cv2.imwrite(str(paths[-1]), image)

    assert (
        main(
            [
                "score",
                str(folder),
                "--out",
                str(tmp_path / "out"),
                "--registry",
                str(registry_root),
                "--model",
                MODEL_NAME,
            ]
        )
        == 0
    )
    with (tmp_path / "out" / "scores.csv").open(newline="") as f:
        from_csv = [float(row["display_score"]) for row in csv.DictReader(f)]

    with serve(create_app(make_settings(registry_root))) as live:
        with Client(live.http) as client:
            assessed = [client.assess(path).frames[0] for path in paths]
            streamed = list(client.scan(paths))
        # The stream's messages themselves, not the client's reading of them.
        from_messages = [v.message["display_score"] for v in streamed]
        page, problems = open_page(browser, live)
        shown = []
        for i, path in enumerate(paths):  # one frame per session: its smoothed score is its own
            single = tmp_path / f"single{i}"
            single.mkdir()
            (single / path.name).write_bytes(path.read_bytes())
            page.evaluate("document.getElementById('summary').textContent = ''")  # not the last session's
            page.set_input_files("#folder-input", str(single))
            page.wait_for_function(
                "document.getElementById('summary').hidden === false && "
                "document.getElementById('summary').textContent.includes('1 frames received')",
                timeout=WAIT_MS,
            )
            shown.append(page.inner_text("#gauge-value"))
        assert problems == []
        page.close()

    scores = [a.score for a in assessed]
    assert [v.score for v in streamed] == pytest.approx(scores, abs=1e-6)
    assert from_messages == pytest.approx(scores, abs=1e-6)
    assert from_csv == pytest.approx(scores, abs=1e-6)
    in_scope = [a.verdict in ("good", "adjust") for a in assessed]
    assert any(in_scope)
    assert [s for s, keep in zip(shown, in_scope, strict=True) if keep] == [
        f"{a:.2f}" for a, keep in zip(scores, in_scope, strict=True) if keep
    ]
