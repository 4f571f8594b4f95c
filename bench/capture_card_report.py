"""The capture-card benchmark's record (bench/capture_card.py): its rows, and issue #27's targets judged on them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.latency_load import Result
from bench.machine import cpu_model
from docs_gen.blocks import invocation
from usqa.contracts.protocol import CloseCode

SCREENS = ("jpeg-640x480", "jpeg-1920x1080")
TARGET_P99_MS = {"jpeg-640x480": 10.0, "jpeg-1920x1080": 15.0}
HEAVIEST = "jpeg-1920x1080"
# The cine as PNG at the first model's input size (64 px for usqa-prostate v4): what a cropping client sends.
PNG_KIND = "png-input"


@dataclass
class Run:
    rows: list[tuple[str, str, Result]] = field(default_factory=list)  # (kind, served, result)
    capacity: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> /readyz capacity
    at_capacity: dict[str, Any] = field(default_factory=dict)
    # kind -> the first exam's own service at 4 x 30 fps
    light: dict[str, Result] = field(default_factory=dict)
    workers: int = 1  # the service's inference workers (threads of the leanest in-process row)
    frames_on_loop: bool = False  # the service's event loop ran the stream frames (/readyz)
    # kind -> exam -> mean bytes per frame
    frame_bytes: dict[str, dict[str, int]] = field(default_factory=dict)

    def note(self, kind: str, served: str, result: Result) -> None:
        print(f"{kind:>15s} {served:>8s} {result.line()}", flush=True)
        self.rows.append((kind, served, result))

    def find(
        self, kind: str, target: str, served: str, saturated: bool, streams: int = 4
    ) -> dict[str, Any] | None:
        for k, s, result in self.rows:
            row = result.row()
            if (k, row["target"], s, row["fps"] is None, row["streams"]) == (
                kind, target, served, saturated, streams,
            ):  # fmt: skip
                return row
        return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _judged(value: float | None, text: str, ok: bool, judged: bool = True) -> str:
    if value is None:
        return "not measured"
    # The figures are for the capture card's screens (item 5: 640x480 and 1920x1080 JPEG); the PNG at the
    # model's input size is shown beside them, unjudged.
    return f"{text}: {'met' if ok else '**missed**'}" if judged else f"{text} (not an issue #27 target)"


def findings(out: Run) -> list[str]:
    """The issue's targets, judged on this run's rows."""
    lines: list[str] = []
    for kind in (PNG_KIND, *SCREENS):
        paced = out.find(kind, "ws", "1 model", False)
        two = out.find(kind, "ws", "2 models", False)
        saturated = out.find(kind, "ws", "1 model", True)
        limit = out.find(kind, "inprocess", "", True)  # 4 saturated streams in-process, as the service's
        workers = out.find(kind, "inprocess", "", True, out.workers)
        capacity = out.capacity.get(kind, {})
        reported = capacity.get("frames_per_second")
        measured_fps = None if saturated is None else saturated["throughput_fps"]
        parts = []
        judged = kind in TARGET_P99_MS
        if judged and paced is not None:
            target = TARGET_P99_MS[kind]
            parts.append(
                _judged(
                    paced["p99_ms"],
                    f"p99 at 4 x 30 fps {paced['p99_ms']:.2f} ms (<= {target:g})",
                    paced["p99_ms"] <= target,
                )
            )
        cost = _ratio(None if two is None else two["p99_ms"], None if paced is None else paced["p99_ms"])
        if cost is not None:
            parts.append(_judged(cost, f"two models / one, p99 {cost:.1%} (<= 110 %)", cost <= 1.10, judged))
        share = _ratio(measured_fps, None if limit is None else limit["throughput_fps"])
        if share is not None:
            text = f"saturated service / in-process limit, 4 streams each: {share:.1%} (>= 90 %)"
            parts.append(_judged(share, text, share >= 0.9, judged))
        lean = _ratio(measured_fps, None if workers is None else workers["throughput_fps"])
        if lean is not None and out.workers != 4:
            parts.append(f"against {out.workers} in-process thread(s), one per inference worker: {lean:.0%}")
        near = _ratio(reported, measured_fps)
        if near is not None:
            parts.append(
                _judged(
                    near,
                    f"capacity reported {reported:.0f} frames/s ({capacity.get('streams')} streams at 30 fps, bound "
                    f"{capacity.get('bound')}) / saturation measured {measured_fps:.0f}: {near:.1%} (80-120 %)",
                    0.8 <= near <= 1.2,
                    judged,
                )
            )
        budget = _frame_budget(limit, saturated, out.find(kind, "ws", "floor", True), out.frames_on_loop)
        if budget:
            parts.append(budget)
        regimes = _thread_costs(out.light.get(kind), saturated, capacity.get("warm_ratio"))
        if regimes:
            parts.append(regimes)
        lines.append(f"- {kind}: " + "; ".join(parts))
    at = out.at_capacity
    if at:
        target = TARGET_P99_MS[HEAVIEST]
        p99 = at["row"]["p99_ms"]
        # Refused once the streams open reached the capacity the service reported just before (its live measure).
        tries = at.get("tries") or [(at["streams"], at["streams"])]
        reported, open_before = tries[-1]
        refused = at["code"] == CloseCode.TRY_AGAIN and open_before >= reported
        admitted = (
            f"{len(tries) - 1} more were admitted while it reported {', '.join(str(t[0]) for t in tries[1:])} "
            "streams, and the next was "
            if len(tries) > 1
            else "one more was "
        )
        lines.append(
            f"- at capacity ({HEAVIEST}, each stream planned at {at['fps']:g} fps, `USQA_STREAM_FPS`): the service "
            f"reported {at['streams']} streams; they ran at p99 {p99:.2f} ms ("
            + ("met" if p99 <= target else "**missed**")
            + f" against {target:g} ms); {admitted}"
            + (
                f"refused with {at['code']} at {open_before} streams open of {reported} reported (`{at['reason']}`)"
                if refused
                else f"**not refused** ({at['code']}, {open_before} streams open of {reported} reported)"
            )
        )
    return lines


def _thread_ms(row: dict[str, Any] | None) -> tuple[float, float] | None:
    """A service row's CPU per frame, in ms: (its event loop's thread, its other threads); None where not read."""
    if row is None or not row["completed"] or row["loop_cpu_s"] is None:
        return None
    return (
        1000.0 * row["loop_cpu_s"] / row["completed"],
        1000.0 * (row["other_cpu_s"] or 0.0) / row["completed"],
    )


def _frame_budget(
    limit: dict[str, Any] | None,
    saturated: dict[str, Any] | None,
    floor: dict[str, Any] | None,
    frames_on_loop: bool,
) -> str:
    """What 90 % of the in-process limit leaves a frame on the service's one core, beside what the service's threads
    and the transport alone (`bench.ws_floor`) spend on it at saturation."""
    spent = _thread_ms(saturated)
    if limit is None or spent is None or floor is None:
        return ""
    if not limit["throughput_fps"] or not floor["throughput_fps"] or floor["cpu_cores"] is None:
        return ""
    allowed = 1000.0 / (0.9 * limit["throughput_fps"])
    loop, work = spent
    transport = floor["cpu_cores"] / floor["throughput_fps"] * 1000.0
    spent_on = (
        f"its event loop, which ran the frames, {loop:.2f} ms and its other threads {work:.2f} ms"
        if frames_on_loop
        else f"its workers {work:.2f} ms and its event loop {loop:.2f} ms"
    )
    text = (
        f"90 % of the limit allows {allowed:.2f} ms of CPU per frame in all; at saturation the service spent "
        f"{spent_on}, and the transport alone costs {transport:.2f} ms "
        f"(`bench.ws_floor`, {floor['throughput_fps']:.0f} frames/s)"
    )
    switches, floor_switches = _switches(saturated), _switches(floor)
    if switches is not None and floor_switches is not None:
        # On one core every wake-up of the loop while a worker runs is a pair of switches: beside the transport's,
        # the count says how often the two threads took turns for a frame.
        text += (
            f"; context switches per frame at saturation: event loop {switches[0]:.2f}, other threads "
            f"{switches[1]:.2f} (transport alone {floor_switches[0]:.2f})"
        )
    return text


def _switches(row: dict[str, Any] | None) -> tuple[float, float] | None:
    """A service row's context switches per frame: (its event loop's thread, its other threads)."""
    if row is None or not row["completed"] or row.get("loop_switches") is None:
        return None
    return row["loop_switches"] / row["completed"], (row["other_switches"] or 0) / row["completed"]


def _thread_costs(light: Result | None, saturated: dict[str, Any] | None, warm_ratio: float | None) -> str:
    """The service's CPU per frame on its event loop's thread and on its other threads, at 4 x 30 fps and saturated:
    how much colder a frame is at light load, which the capacity meter's warm ratio corrects for."""
    cold = None if light is None else _thread_ms(light.row())
    warm = _thread_ms(saturated)
    if cold is None or warm is None:
        return ""
    return (
        f"CPU per frame at 4 x 30 fps / saturated: event loop {cold[0]:.2f} / {warm[0]:.2f} ms "
        f"({_ratio(warm[0], cold[0]) or 0:.2f}), other threads {cold[1]:.2f} / {warm[1]:.2f} ms "
        f"({_ratio(warm[1], cold[1]) or 0:.2f}); the meter's warm ratio {warm_ratio}"
    )


def markdown(out: Run, argv: Sequence[str] | None) -> str:
    lines = [
        f"Measured by `{invocation('bench.capture_card', argv)}` on {cpu_model()} ({os.cpu_count()} cores), "
        f"{args_duration(out)} s per row.",
        "",
        "Mean bytes per frame: "
        + "; ".join(
            f"{kind} " + ", ".join(f"{name} {size:,}" for name, size in sizes.items())
            for kind, sizes in out.frame_bytes.items()
        )
        + ".",
        "",
        "| frames | target | served | streams x fps | p50 ms | p99 ms | frames/s | dropped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, served, result in out.rows:
        row = result.row()
        rate = f"{row['streams']} saturated" if row["fps"] is None else f"{row['streams']} x {row['fps']:g}"
        lines.append(
            f"| {kind} | {row['target']} | {served} | {rate} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
            f"| {row['throughput_fps']:.1f} | {row['drop_rate']:.1%} |"
        )
    return "\n".join([*lines, "", *findings(out)]) + "\n"


def args_duration(out: Run) -> str:
    return f"{out.rows[0][2].duration_s:g}" if out.rows else "0"
