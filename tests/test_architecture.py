"""docs/architecture.md names modules that exist: its stage lists and rooms are read against the tree."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
# `usqa/...py` paths and `usqa/.../` folders in backticks.
NAMED = re.compile(r"`(usqa/[\w/]*?(?:\.py|/))`")


def _section(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"docs/architecture.md has no section {name!r}"
    return match.group(1)


def test_every_stage_names_modules_that_exist() -> None:
    for section in ("The frame path", "The model path"):
        stages = [line for line in _section(section).splitlines() if re.match(r"\d+\. ", line)]
        assert len(stages) >= 5, f"{section}: too few stages"
        for stage in stages:
            named = NAMED.findall(stage)
            assert named, f"{section}: a stage names no module: {stage}"
            missing = [path for path in named if not (REPO / path).exists()]
            assert missing == [], f"{section}: {stage.split(':')[0]} names missing {missing}"


def test_every_room_and_module_the_page_names_exists() -> None:
    named = set(NAMED.findall(DOC.read_text(encoding="utf-8")))
    assert named, "docs/architecture.md names no module"
    assert sorted(p for p in named if not (REPO / p).exists()) == []


def test_the_trainer_holds_only_building_blocks_and_rooms() -> None:
    """Issue #23: no module directly inside the trainer other than the shared building blocks."""
    trainer = REPO / "usqa" / "trainer"
    modules = {p.name for p in trainer.glob("*.py")}
    assert modules <= {"__init__.py", "networks.py", "data.py", "augment.py"}, modules
    assert all(
        (room / "__init__.py").is_file()
        for room in trainer.iterdir()
        if room.is_dir() and room.name != "__pycache__"
    )


def test_no_module_or_test_file_is_over_400_lines() -> None:
    roots = ("usqa", "tests", "bench", "experiments", "docs_gen", "scripts")
    long = {
        str(p.relative_to(REPO)): n
        for root in roots
        for p in (REPO / root).rglob("*.py")
        if "shipped" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
