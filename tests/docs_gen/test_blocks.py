"""The one writer of generated blocks in docs/: only between its markers, refusals that say why, idempotent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs_gen.blocks import (
    MarkerError,
    begin_marker,
    block_body,
    check_block,
    end_marker,
    invocation,
    replace_block,
    splice,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = """# Performance

Prose before, edited by people.

<!-- generated:speed begin (python -m bench.old_name --frames 10) -->
old figures
<!-- generated:speed end -->

<!-- generated:other begin (python -m bench.other) -->
another generator's figures
<!-- generated:other end -->

Prose after.
"""


def test_only_the_lines_between_the_markers_change(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(PAGE)
    replace_block(page, "speed", "new figures\n\n| a | b |", module="bench.simulator_speed")
    text = page.read_text()
    assert text == PAGE.replace(
        "<!-- generated:speed begin (python -m bench.old_name --frames 10) -->\nold figures",
        "<!-- generated:speed begin (python -m bench.simulator_speed) -->\nnew figures\n\n| a | b |",
    )
    assert block_body(text, "speed") == "new figures\n\n| a | b |"
    assert block_body(text, "other") == "another generator's figures"
    assert page.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("body", ["", "one line", "\nblank lines around\n", "a\n\n\nb"])
def test_splicing_twice_is_splicing_once(body: str) -> None:
    once = splice(PAGE, "speed", body, module="bench.simulator_speed")
    assert splice(once, "speed", body, module="bench.simulator_speed") == once
    assert block_body(once, "speed") == body


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("# Page\n\nno block here\n", "has no begin and end marker"),
        ("<!-- generated:speed begin (python -m x) -->\nfigures\n", "has no end marker"),
        ("figures\n<!-- generated:speed end -->\n", "has no begin marker"),
        (PAGE + PAGE, "marked 2 x begin and 2 x end"),
        (PAGE + "<!-- generated:speed end -->\n", "marked 1 x begin and 2 x end"),
        ("<!-- generated:speed end -->\n<!-- generated:speed begin (python -m x) -->\n", "comes before"),
        # A marker inside a line of prose is quoted, not a marker.
        (
            "See `<!-- generated:speed begin -->` and `<!-- generated:speed end -->`.\n",
            "has no begin and end",
        ),
    ],
)
def test_a_page_without_exactly_one_pair_of_markers_is_refused(
    tmp_path: Path, page: str, message: str
) -> None:
    path = tmp_path / "page.md"
    path.write_text(page)
    with pytest.raises(MarkerError, match=re.escape(message)) as refused:
        replace_block(path, "speed", "new", module="bench.simulator_speed")
    assert str(path) in str(refused.value) and "'speed'" in str(refused.value)
    with pytest.raises(MarkerError):
        check_block(path, "speed")
    assert path.read_text() == page


def test_a_missing_page_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(MarkerError, match="no such page"):
        replace_block(tmp_path / "missing.md", "speed", "new", module="bench.simulator_speed")
    assert not (tmp_path / "missing.md").exists()


def test_block_names_of_a_similar_prefix_are_distinct() -> None:
    page = f"{begin_marker('speed-2', 'x')}\nkept\n{end_marker('speed-2')}\n" + PAGE
    assert block_body(splice(page, "speed", "new", module="x"), "speed-2") == "kept"
    with pytest.raises(ValueError, match="lowercase"):
        begin_marker("Speed block", "x")


# Every generator and the page its block lives in: the committed pages carry each block exactly once.
GENERATED = [
    ("performance.md", "simulator", "bench.simulator_speed"),
    ("performance.md", "service", "bench.service_latency"),
    ("performance.md", "scope-cost", "bench.scope_cost"),
    ("deploy.md", "footprint", "bench.deploy_footprint"),
    ("results.md", "results", "experiments.results"),
    ("heating.md", "heating", "experiments.heating_analysis"),
]


@pytest.mark.parametrize(("page", "name", "module"), GENERATED)
def test_the_committed_pages_carry_each_generated_block_once(page: str, name: str, module: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    check_block(DOCS / page, name)
    assert begin_marker(name, module) in text
    assert splice(text, name, block_body(text, name), module=module) == text


def test_no_page_marks_a_block_another_way() -> None:
    for page in sorted(DOCS.glob("*.md")):
        for comment in re.findall(r"<!--.*?-->", page.read_text(encoding="utf-8")):
            if re.search(r"begin|end|start|generated|written", comment):
                assert comment.startswith("<!-- generated:"), f"{page.name}: {comment}"


def test_the_invocation_a_block_records_is_the_module_and_its_arguments() -> None:
    assert invocation("bench.scope_cost", ["--frames", "64"]) == "python -m bench.scope_cost --frames 64"
    assert invocation("bench.scope_cost", []) == "python -m bench.scope_cost"
