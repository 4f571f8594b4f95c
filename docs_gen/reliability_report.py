"""docs/reliability.md from the reliability suite's figures: `python -m docs_gen.reliability_report`.

`make reliability` runs `USQA_RELIABILITY=full pytest tests/reliability`, which writes one JSON file per
section to runs/reliability/ (each test's figures, outcome and duration, merged as tests finish), then this
script. Per section the page shows each target of `TARGETS` (the measured value, the target, met or not),
the figures without a target, the tests' outcomes and the section's notes (known gaps and their causes).
A section without a file is "not measured in this run". The fast run inside `make test` writes its figures
to a temporary folder, so this page only ever shows full runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docs_gen.blocks import write_atomically
from docs_gen.reliability_targets import HIGHLIGHTS, SECTIONS, TARGETS, Section, number

RUNS_DIR = Path("runs/reliability")
DOC = Path("docs/reliability.md")
SUITE_COMMAND = "USQA_RELIABILITY=full python -m pytest tests/reliability -p no:cacheprovider"
REPORT_COMMAND = "python -m docs_gen.reliability_report"
NOT_MEASURED = "not measured in this run"


# -- reading ---------------------------------------------------------------------------------------------


@dataclass
class SectionRun:
    """One section's file: per test, figures, outcome and duration."""

    document: dict[str, Any]

    @property
    def tests(self) -> dict[str, dict[str, Any]]:
        tests: dict[str, dict[str, Any]] = self.document.get("tests", {})
        return tests

    def figure(self, names: Sequence[str]) -> float:
        """The figures combined across tests: counts summed, peaks the largest; NaN when none was recorded."""
        values: list[float] = []
        kinds: set[str] = set()
        for entry in self.tests.values():
            for name in names:
                recorded = entry.get("figures", {}).get(name)
                if recorded is not None:
                    values.append(float(recorded["value"]))
                    kinds.add(str(recorded.get("aggregate", "sum")))
        if not values:
            return math.nan
        finite = [value for value in values if not math.isnan(value)]
        if kinds == {"sum"}:
            return float(sum(values))
        return max(finite) if finite else math.nan

    def figure_names(self) -> list[str]:
        return sorted({name for entry in self.tests.values() for name in entry.get("figures", {})})

    def notes(self) -> list[str]:
        seen: dict[str, None] = {}
        for entry in self.tests.values():
            seen.update(dict.fromkeys(entry.get("notes", [])))
        return list(seen)

    def outcomes(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for entry in self.tests.values():
            outcome = str(entry.get("outcome", "error"))
            counted[outcome] = counted.get(outcome, 0) + 1
        return counted

    def duration_s(self) -> float:
        return float(sum(float(entry.get("duration_s", 0.0)) for entry in self.tests.values()))

    def finished(self) -> str:
        return max((str(entry.get("finished", "")) for entry in self.tests.values()), default="")


def read_runs(directory: Path) -> dict[str, SectionRun]:
    runs: dict[str, SectionRun] = {}
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text())
        runs[str(document.get("section", path.stem))] = SectionRun(document)
    return runs


# -- writing ---------------------------------------------------------------------------------------------


def _when(timestamp: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp or "unknown"
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _machine(run: SectionRun) -> str:
    machine: Mapping[str, Any] = run.document.get("machine", {})
    return (
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', 'unknown CPU')}), "
        f"{machine.get('platform', 'unknown platform')}, Python {machine.get('python', '?')}"
    )


def section_verdict(key: str, run: SectionRun | None) -> tuple[int, int, bool]:
    """(targets met, targets, every test passed)."""
    if run is None:
        return 0, len(TARGETS.get(key, ())), False
    targets = TARGETS.get(key, ())
    met = sum(target.met(run.figure(target.figures)) for target in targets)
    outcomes = run.outcomes()
    return met, len(targets), set(outcomes) <= {"passed"}


def section_lines(number_: int, section: Section, run: SectionRun | None) -> list[str]:
    lines = [f"## {number_}. {section.title}", "", section.promise, ""]
    if run is None:
        return [*lines, f"*{NOT_MEASURED.capitalize()}.*", ""]
    if run.document.get("mode") != "full":
        lines += ["**These figures come from a fast run (`make test`), not a measurement.**", ""]
    targets = TARGETS.get(section.key, ())
    highlights = HIGHLIGHTS.get(section.key, ())
    shown: set[str] = set()
    if not targets and not highlights:
        lines += [
            "No targets are set for this section yet (`TARGETS` in docs_gen/reliability_targets.py); the figures "
            "as recorded:",
            "",
            "| figure | value |",
            "| --- | ---: |",
        ]
        lines += [f"| `{name}` | {number(run.figure([name]))} |" for name in run.figure_names()]
        return [*lines, *_run_lines(run)]
    lines += ["| figure | measured | target | |", "| --- | ---: | ---: | --- |"]
    for target in targets:
        measured = run.figure(target.figures)
        unit = f" {target.unit}" if target.unit and not math.isnan(measured) else ""
        verdict = (
            "not measured" if math.isnan(measured) else ("met" if target.met(measured) else "**not met**")
        )
        lines.append(f"| {target.label} | {number(measured)}{unit} | {target.shown} | {verdict} |")
        shown.update(target.figures)
    for label, names in highlights:
        lines.append(f"| {label} | {number(run.figure(names))} | — | |")
        shown.update(names)
    others = [name for name in run.figure_names() if name not in shown]
    if others:
        lines += ["", "<details><summary>Every other recorded figure</summary>", ""]
        lines += ["| figure | value |", "| --- | ---: |"]
        lines += [f"| `{name}` | {number(run.figure([name]))} |" for name in others]
        lines += ["", "</details>"]
    return [*lines, *_run_lines(run)]


def _run_lines(run: SectionRun) -> list[str]:
    """The tests behind a section's figures: outcomes, time, machine, the failed ones, the notes."""
    lines: list[str] = []
    outcomes = run.outcomes()
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    lines += [
        "",
        f"Tests: {summary}; {run.duration_s():.0f} s in all; finished {_when(run.finished())} on {_machine(run)}.",
    ]
    failed = [test for test, entry in sorted(run.tests.items()) if entry.get("outcome") != "passed"]
    if failed:
        lines += ["", "Tests that did not pass (their figures are included above):", ""]
        lines += [f"- `{test}`" for test in failed]
    notes = run.notes()
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {note}" for note in notes]
    return [*lines, ""]


def render(runs: Mapping[str, SectionRun], *, written: datetime.datetime) -> str:
    started = sorted(str(run.document.get("started", "")) for run in runs.values())
    lines = [
        "# Reliability",
        "",
        "What usqa promises under malformed input, load with model swaps, faults, resource pressure and "
        "abuse, with the figures as measured by the reliability suite (`tests/reliability`).",
        "",
        f"Regenerated by `make reliability`: `{SUITE_COMMAND}`, then `{REPORT_COMMAND}` (this page). "
        "`make test` runs the same tests with small case counts and never writes this page.",
        "",
        f"Measured from {_when(started[0]) if started else 'never'}; page written {_when(written.isoformat())}.",
        "",
        "| section | targets met | tests |",
        "| --- | --- | --- |",
    ]
    for index, section in enumerate(SECTIONS, start=1):
        run = runs.get(section.key)
        link = f"[{index}. {section.title}](#{index}-{section.title.lower().replace(' ', '-')})"
        if run is None:
            lines.append(f"| {link} | {NOT_MEASURED} | |")
            continue
        met, total, passed = section_verdict(section.key, run)
        targets = f"{met} of {total}" if total else "no targets set"
        outcomes = ", ".join(f"{count} {outcome}" for outcome, count in sorted(run.outcomes().items()))
        lines.append(f"| {link} | {targets} | {outcomes}{'' if passed else ' (see below)'} |")
    lines.append("")
    for index, section in enumerate(SECTIONS, start=1):
        lines += section_lines(index, section, runs.get(section.key))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs_gen.reliability_report")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="folder of <section>.json (%(default)s)")
    parser.add_argument("--out", type=Path, default=DOC, help="the page to write (%(default)s)")
    args = parser.parse_args(argv)
    runs = read_runs(args.runs)
    if not runs:
        print(f"no figures in {args.runs}: run `{SUITE_COMMAND}` first")
        return 1
    write_atomically(args.out, render(runs, written=datetime.datetime.now(datetime.UTC)))
    unmet = [
        section.title
        for section in SECTIONS
        if section.key in runs
        and section_verdict(section.key, runs[section.key])[0] < len(TARGETS[section.key])
    ]
    measured = [section.title for section in SECTIONS if section.key in runs]
    print(
        f"wrote {args.out}: {', '.join(measured)} measured"
        + (f"; targets not met in {', '.join(unmet)}" if unmet else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
