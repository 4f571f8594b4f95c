"""The demo's first stages, on this machine: a simulated data set, a heated backbone, the controller/predictor
pair trained and evaluated, and its export published as the champion."""

from __future__ import annotations

import shutil
from dataclasses import replace

from usqa.client.archives import zip_folder
from usqa.demo.context import CLASS_NAMES, MODEL, PRESET, SUBJECTS, Demo
from usqa.demo.summary import verdict_lines
from usqa.service.datasets import load_dataset
from usqa.service.datasets.cli import format_counts, render_sheet, sample_for_sheet
from usqa.service.datasets.contact_sheet import write_png
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.simulator import write_dataset
from usqa.trainer.amenability.evaluate import evaluate
from usqa.trainer.amenability.run import train
from usqa.trainer.amenability.run_folder import EVAL_DIR
from usqa.trainer.heating.config import heat_preset
from usqa.trainer.heating.data import load_class_data
from usqa.trainer.heating.heat import heat
from usqa.trainer.heating.run_folder import BACKBONE_FILE
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import ExportOptions, export_run

BACKBONE_NAME = "demo-heated.pt"  # in the data root's backbones/, where a retraining job finds it
FRAME_SIZE = 128


def simulate(demo: Demo) -> str:
    """A labelled data set, stored in the data root as an upload would be (so it is the champion's reference)."""
    demo.quiet_libraries()
    source = demo.out / "source" / "first"
    write_dataset(
        source,
        frames=demo.args.frames,
        subjects=SUBJECTS,
        seed=demo.args.seed,
        size=FRAME_SIZE,
        preset=PRESET,
    )
    first, _ = demo.store.add_archive(zip_folder(source, demo.out / "first.zip"), "first.zip")
    dataset = load_dataset(demo.store.path(first.id))
    sheet = demo.out / "contact_sheet.png"
    write_png(sheet, render_sheet(dataset, sample_for_sheet(dataset, 48)))
    demo.facts.first = first
    print("\n".join(f"    {line}" for line in format_counts(dataset).splitlines()))
    return f"simulated {first.frames} {PRESET} frames as data set {first.id}; contact sheet {sheet}"


def heat_backbone(demo: Demo) -> str:
    """The backbone that initialises the pair, pre-trained with noise masks (seed 000)."""
    assert demo.facts.first is not None
    data_dir = demo.store.path(demo.facts.first.id)
    config = heat_preset(demo.args.config)
    heated = heat(
        config,
        load_class_data([data_dir], config.frame, config.classes),
        demo.out / "heat",
        progress=demo.progress,
    )
    backbones = demo.settings.data_root / "backbones"
    backbones.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(demo.out / "heat" / BACKBONE_FILE, backbones / BACKBONE_NAME)
    demo.facts.heat_steps = heated.step
    return f"heated a backbone with noise masks ({heated.step} steps): {demo.out / 'heat' / BACKBONE_FILE}"


def train_pair(demo: Demo) -> str:
    """The controller/predictor pair (seed 004) on the heated backbone; evaluated on the holdout split."""
    assert demo.facts.first is not None
    data_dir = demo.store.path(demo.facts.first.id)
    config = replace(
        preset(demo.args.config, task="classify", reward="weighted", algo="reinforce"),
        backbone_checkpoint=str(demo.out / "heat" / BACKBONE_FILE),
    )
    demo.quiet_libraries()
    result = train(config, data_dir, demo.out / "run", progress=demo.progress)
    report = evaluate(demo.out / "run", data_dir, demo.out / "run" / EVAL_DIR)
    op = report["rejection_ratios"].index(report["operating_point"])
    demo.facts.train_seconds = sum(result.seconds.values())
    demo.facts.verdict = None if result.verdict is None else result.verdict.to_dict()
    demo.facts.holdout = {
        "frames": report["frames"],
        "metric": report["metric"],
        "rejection": report["operating_point"],
        "controller": report["curves"]["controller"]["mean"][op],
        "random": report["curves"]["random"]["mean"][op],
        "kappa": report["kappa"]["controller"],
    }
    return (
        f"trained the controller/predictor pair ({demo.args.config} budget, {demo.facts.train_seconds:.0f} s) "
        f"and evaluated it on the holdout split: {demo.out / 'run' / EVAL_DIR / 'report.json'}"
    )


def publish(demo: Demo) -> str:
    """Export to ONNX and publish as champion, forced: the demo shows the service even for a failed check."""
    assert demo.facts.first is not None
    verdict = demo.facts.verdict
    if verdict is not None:
        print("\n".join(f"    {line}" for line in verdict_lines(verdict)))
        if not verdict["passed"]:
            print("    published anyway: the demo forces it so the service has a model to show")
            print("    (`usqa export` refuses a run whose check failed unless given --force)")
    demo.quiet_libraries()
    version = export_run(
        demo.out / "run",
        ModelRegistry(demo.settings.registry),
        ExportOptions(
            name=MODEL, alias=CHAMPION, class_names=CLASS_NAMES, dataset=demo.facts.first.id, force=True
        ),
        data_dir=demo.store.path(demo.facts.first.id),
    )
    demo.facts.version = version.version
    return f"exported and published {version.name} v{version.version} as champion: {version.path}"
