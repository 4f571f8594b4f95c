"""The record of `bench.service_latency`: the targets' verdicts, the table, the plot and the generated block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.latency_load import FPS, STREAM_COUNTS
from docs_gen.blocks import replace_block, write_atomically

TARGET_WS_P99_MS = 15.0
TARGET_RAW_FRACTION = 0.75
TARGET_PEER_FACTOR = 3.0


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    def find(target: str, streams: int, fps: float | None) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["target"] == target and r["streams"] == streams and r["fps"] == fps), None
        )

    lines = []
    ws4 = find("ws", 4, FPS)
    if ws4:
        ok = ws4["p99_ms"] <= TARGET_WS_P99_MS
        lines.append(
            f"WebSocket p99 at 4 x 30 fps: {ws4['p99_ms']} ms (target <= {TARGET_WS_P99_MS}): {'met' if ok else 'MISSED'}"
        )
    top = max(STREAM_COUNTS)
    service = max(
        (r["throughput_fps"] for r in rows if r["target"] in ("assess", "ws") and r["fps"] is None),
        default=None,
    )
    raw = max(
        (r["throughput_fps"] for r in rows if r["target"].startswith("raw") and r["fps"] is None),
        default=None,
    )
    naive = find("naive", top, None)
    if service is not None and raw:
        share = service / raw
        lines.append(
            f"saturated service / best raw onnxruntime: {share:.0%} (target >= {TARGET_RAW_FRACTION:.0%}): {'met' if share >= TARGET_RAW_FRACTION else 'MISSED'}"
        )
    inprocess = find("inprocess", top, None)
    if service is not None and inprocess and inprocess["throughput_fps"]:
        lines.append(
            f"saturated service / the same per-frame work in-process (decode, prepare, both graphs, verdict; "
            f"{top} threads): {service / inprocess['throughput_fps']:.0%}"
        )
    service_eff = max(
        (r["frames_per_cpu_s"] or 0 for r in rows if r["target"] in ("assess", "ws") and r["fps"] is None),
        default=0,
    )
    raw_eff = max(
        (r["frames_per_cpu_s"] or 0 for r in rows if r["target"].startswith("raw") and r["fps"] is None),
        default=0,
    )
    if service_eff and raw_eff:
        lines.append(
            f"per CPU-second, saturated service / raw onnxruntime: {service_eff / raw_eff:.0%} "
            "(the same comparison with the host's other load factored out)"
        )
    if service is not None and naive and naive["throughput_fps"]:
        factor = service / naive["throughput_fps"]
        lines.append(
            f"saturated service / naive peer: {factor:.1f}x (target >= {TARGET_PEER_FACTOR:g}x): {'met' if factor >= TARGET_PEER_FACTOR else 'MISSED'}"
        )
    return lines


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| target | streams | rate | p50 ms | p99 ms | throughput fps | frames / CPU s | drop rate | CPU cores | RSS MB |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        rate = "saturated" if r["fps"] is None else f"{r['fps']:g} fps"
        lines.append(
            f"| {r['target']} | {r['streams']} | {rate} | {r['p50_ms']} | {r['p99_ms']} | {r['throughput_fps']} "
            f"| {r['frames_per_cpu_s']} "
            f"| {r['drop_rate']:.1%} | {r['cpu_cores']} | {r['rss_mb']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for target in ("raw", "inprocess", "assess", "ws", "naive"):
        paced = [r for r in rows if r["target"] == target and r["fps"] is not None]
        if paced:
            left.plot([r["streams"] for r in paced], [r["p99_ms"] for r in paced], marker="o", label=target)
    left.axhline(TARGET_WS_P99_MS, color="grey", linestyle="--", linewidth=1, label="WS p99 target")
    left.set(xscale="log", xticks=list(STREAM_COUNTS), xlabel="streams at 30 fps", ylabel="p99 latency (ms)")
    left.set_xticklabels([str(n) for n in STREAM_COUNTS])
    left.legend()
    saturated = [r for r in rows if r["fps"] is None]
    right.bar([r["target"] for r in saturated], [r["throughput_fps"] for r in saturated], color="#4a90d9")
    right.set(ylabel="frames per second", title="saturated throughput")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


BLOCK = "service"


def record_in_docs(
    docs: Path, table: str, verdict_lines: list[str], meta: dict[str, Any], plot_path: Path
) -> None:
    """Rewrite the generated block `service` of `docs` with this run's figures and plot."""
    image = docs.parent / "img" / "service_latency.png"
    write_atomically(image, plot_path.read_bytes())
    command = f"python -m bench.service_latency --registry {meta['registry']} --name {meta['name']}"
    body = [
        f"Measured {meta['at']} on {meta['cpus']} cores ({meta.get('cpu_model', 'unknown')}), model "
        f"`{meta['name']}` from `{meta['registry']}`, {meta['duration_s']:.0f} s per scenario, "
        f"by `{command}`:",
        "",
        table,
        "",
        *[f"- {line}" for line in verdict_lines],
        "",
        f"![service latency](img/{image.name})",
    ]
    replace_block(docs, BLOCK, "\n".join(body), module="bench.service_latency")
