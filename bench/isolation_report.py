"""The record of `bench.live_isolation`: the target's verdict, the table and the generated block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docs_gen.blocks import replace_block

BLOCK = "live-isolation"
TARGET_P99_MS = 100.0  # issue 28: a 10 fps stream's p99 beside two hostile uploads


def _find(rows: list[dict[str, Any]], target: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["target"] == target), None)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    loaded, alone = _find(rows, "service + uploads"), _find(rows, "service alone")
    limit, peer = _find(rows, "inprocess"), _find(rows, "naive peer + uploads")
    if loaded:
        ok = loaded["p99_ms"] < TARGET_P99_MS and loaded["uploads_decoded"] > 0
        lines.append(
            f"stream p99 beside {loaded['uploads_answered']} answered hostile uploads "
            f"({loaded['uploads_decoded']} decoded): {loaded['p99_ms']} ms "
            f"(target < {TARGET_P99_MS:g} ms, with uploads decoding): {'met' if ok else 'MISSED'}"
        )
        if alone:
            lines.append(
                f"the same stream with no uploads: p99 {alone['p99_ms']} ms; the uploads add "
                f"{loaded['p99_ms'] - alone['p99_ms']:.1f} ms at p99"
            )
        if limit:
            lines.append(f"the limit, the same frames' work in-process: p99 {limit['p99_ms']} ms")
        if peer and loaded["p99_ms"]:
            lines.append(
                f"naive peer (decodes in a thread of the serving process) beside the same uploads: p99 "
                f"{peer['p99_ms']} ms, {peer['p99_ms'] / loaded['p99_ms']:.1f}x the service's"
            )
    return lines


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| target | what | frames answered | dropped | p50 ms | p99 ms | max ms | uploads decoded / answered "
        "| upload median s | CPU cores | RSS MB |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        uploads = f"{r['uploads_decoded']} / {r['uploads_answered']}" if r["uploads_answered"] else "-"
        lines.append(
            f"| {r['target']} | {r['what']} | {r['completed']} | {r['dropped']} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['max_ms']} | {uploads} | {r.get('upload_median_s') or '-'} | {r['cpu_cores']} | {r['rss_mb']} |"
        )
    return "\n".join(lines)


def record_in_docs(docs: Path, table: str, verdict_lines: list[str], meta: dict[str, Any]) -> None:
    """Rewrite the generated block `live-isolation` of `docs` with this run's figures."""
    body = [
        f"Measured {meta['at']} on {meta['cpus']} cores ({meta['cpu_model']}), load average "
        f"{meta['load_average']} at the end, model `{meta['name']}` v{meta['version']} from "
        f"`{meta['registry']}`, a {meta['fps']:g} fps stream for {meta['duration_s']:g} s per row, {meta['uploaders']} uploaders "
        f"posting a DICOM of {meta['hostile']}, by `{meta['command']}`:",
        "",
        table,
        "",
        *[f"- {line}" for line in verdict_lines],
    ]
    replace_block(docs, BLOCK, "\n".join(body), module="bench.live_isolation")
