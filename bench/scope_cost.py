"""What the out-of-scope check costs per frame: the served model with and without its `ood_distance` output.

    python -m bench.scope_cost --registry models --name usqa-prostate

The distance is part of the predictor graph (the same run, on features it already has). The comparison
graph is that graph cut down to the class or mask output alone (`onnx.utils.Extractor`: every node the
distance needs and nothing else needs is gone), so the difference is exactly the check's work. Both run
in this process on the same simulated frames, batch 1, one thread, alternating frame by frame so that the
host's other load falls on both alike; beside them, the service's whole per-frame work in-process (decode
of the PNG, preparation, both graphs with the distance, the verdict), so the check's share of what the
service does per frame is in the same run. Issue #14 allows it at most 20 % of the served latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import onnx
import onnx.utils
import onnxruntime as ort

from bench.latency_load import cine, encode
from bench.machine import cpu_model
from docs_gen.blocks import check_block, invocation, replace_block
from usqa.service.inference.geometry import stack_pixels
from usqa.service.inference.model import INPUT_NAME, OUTPUT_BY_TASK, SCORE_OUTPUT, load_model
from usqa.service.inference.providers import plan_providers
from usqa.service.inference.scoring import ScoringOptions, decode_for_spec, score_outputs
from usqa.service.registry import ModelRegistry

DOC = Path("docs/performance.md")
BLOCK = "scope-cost"
TARGET_SHARE = 0.20


def _session(path: Path | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _without_distance(predictor: Path, output: str, folder: Path) -> Path:
    """The predictor graph cut down to `output` alone."""
    model = onnx.load(str(predictor))
    inputs = [i.name for i in model.graph.input]
    cut = onnx.utils.Extractor(model).extract_model(inputs, [output])
    path = folder / "predictor-without-ood.onnx"
    onnx.save(cut, str(path))
    return path


def measure(registry: Path, name: str, frames_count: int) -> dict[str, float | int | str]:
    version = ModelRegistry(registry).load(name)
    manifest = version.manifest
    if manifest.ood is None:
        raise SystemExit(f"{name} v{manifest.version} has no out-of-scope check to measure")
    model = load_model(
        version,
        target_rejection=0.05,
        providers=plan_providers(("CPUExecutionProvider",)),
        intra_op_threads=1,
    )
    output = OUTPUT_BY_TASK[manifest.task]
    images = cine(model.spec.size)
    payloads = encode(images)
    with tempfile.TemporaryDirectory(prefix="usqa-scope-cost-") as tmp:
        controller = _session(version.graph_path("controller"))
        full = _session(version.graph_path("predictor"))
        bare = _session(_without_distance(version.graph_path("predictor"), output, Path(tmp)))
        prepared = [
            decode_for_spec(model.spec, p, None, width=None, height=None, max_pixels=1 << 24, max_frames=1)
            for p in payloads
        ]
        batches = [f.frames[0].pixels[None, None] for f in prepared]
        with_ood, without_ood, whole = [], [], []
        options = ScoringOptions()
        for i in range(frames_count):
            feed = {INPUT_NAME: batches[i % len(batches)]}
            started = time.perf_counter()
            controller.run([SCORE_OUTPUT], feed)
            full.run([output, "ood_distance"], feed)
            with_ood.append(time.perf_counter() - started)
            started = time.perf_counter()
            controller.run([SCORE_OUTPUT], feed)
            bare.run([output], feed)
            without_ood.append(time.perf_counter() - started)
            started = time.perf_counter()
            decoded = decode_for_spec(
                model.spec,
                payloads[i % len(payloads)],
                None,
                width=None,
                height=None,
                max_pixels=1 << 24,
                max_frames=1,
            )
            score_outputs(model, model.run(stack_pixels(decoded.frames)), decoded.frames, options)
            whole.append(time.perf_counter() - started)
    graphs_with = statistics.median(with_ood) * 1000
    graphs_without = statistics.median(without_ood) * 1000
    served = statistics.median(whole) * 1000
    return {
        "model": f"{name} v{manifest.version}",
        "frames": frames_count,
        "size": model.spec.size,
        "graphs_with_ms": round(graphs_with, 3),
        "graphs_without_ms": round(graphs_without, 3),
        "served_ms": round(served, 3),
        "check_ms": round(graphs_with - graphs_without, 3),
        "share_of_served": round((graphs_with - graphs_without) / served, 4),
    }


def report(m: dict[str, float | int | str], command: str) -> str:
    share = float(m["share_of_served"])
    verdict = "met" if share <= TARGET_SHARE else "MISSED"
    return "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {cpu_model()}, model `{m['model']}`, {m['frames']} frames of "
            f"{m['size']} px, batch 1, one thread, medians, load average {os.getloadavg()[0]:.1f} at the end; "
            f"command: `{command}`.",
            "",
            "| what | ms per frame |",
            "| --- | ---: |",
            f"| both graphs, with the out-of-scope distance | {m['graphs_with_ms']} |",
            f"| both graphs, the predictor cut to its prediction alone | {m['graphs_without_ms']} |",
            f"| the service's whole per-frame work in-process (decode, prepare, graphs, verdict) | {m['served_ms']} |",
            "",
            f"- the check: {m['check_ms']} ms a frame, {share:.1%} of the in-process served work "
            f"(target <= {TARGET_SHARE:.0%}): {verdict}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    command = invocation("bench.scope_cost", argv)
    if not args.no_doc:
        check_block(args.doc, BLOCK)
    section = report(measure(args.registry, args.name, args.frames), command)
    print(section)
    if not args.no_doc:
        replace_block(args.doc, BLOCK, section, module="bench.scope_cost")
        print(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
