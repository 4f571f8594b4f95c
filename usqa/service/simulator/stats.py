"""How often each degradation makes frames non-amenable: `python -m usqa.service.simulator.stats DIR`.

Reads a simulated data set's labels.csv and prints a Markdown table per degradation kind: frames, frames
with the organ, the share not amenable for classification and for segmentation, and the share of organ
frames where the two labels differ. docs/simulator.md quotes it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from usqa.service.simulator.dataset import LABELS_FILE
from usqa.service.simulator.degradations import DEGRADATION_KINDS, NO_DEGRADATION

ALL_FRAMES = "all frames"


@dataclass
class KindCounts:
    frames: int = 0
    with_organ: int = 0
    not_amenable: int = 0
    not_amenable_seg: int = 0
    labels_differ: int = 0

    def add(self, row: Mapping[str, str]) -> None:
        self.frames += 1
        self.not_amenable += row["amenable"] == "0"
        self.not_amenable_seg += row["amenable_seg"] == "0"
        if row["label"] == "1":
            self.with_organ += 1
            self.labels_differ += row["amenable"] != row["amenable_seg"]


def count_by_kind(rows: Iterable[Mapping[str, str]]) -> dict[str, KindCounts]:
    """Counts per degradation kind (in the simulator's order), plus a total over all frames."""
    counts = {kind: KindCounts() for kind in (NO_DEGRADATION, *DEGRADATION_KINDS, ALL_FRAMES)}
    for row in rows:
        counts[row["degradation"]].add(row)
        counts[ALL_FRAMES].add(row)
    return counts


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def markdown_table(counts: Mapping[str, KindCounts]) -> str:
    lines = [
        "| degradation | frames | with organ | amenable = 0 | amenable_seg = 0 | labels differ (organ frames) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, c in counts.items():
        lines.append(
            f"| {kind} | {c.frames} | {c.with_organ} | {_share(c.not_amenable, c.frames)} | "
            f"{_share(c.not_amenable_seg, c.frames)} | {_share(c.labels_differ, c.with_organ)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data", type=Path, help="a folder written by `usqa simulate`")
    args = parser.parse_args(argv)
    labels = args.data / LABELS_FILE
    if not labels.is_file():
        print(f"no {LABELS_FILE} in {args.data}", file=sys.stderr)
        return 2
    with labels.open(newline="") as f:
        print(markdown_table(count_by_kind(csv.DictReader(f))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
