from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from usqa.cli import main
from usqa.contracts.graphs import MASK_OUTPUT, SCORE_OUTPUT
from usqa.contracts.training import TrainConfig
from usqa.service.inference.graph_file import run_graph_file
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.trainer.amenability.acceptance import MSG_TRIVIAL_PREDICTOR, compute_verdict, refusal
from usqa.trainer.amenability.run import load_run, train
from usqa.trainer.amenability.run_folder import (
    DATA_RECORD_FILE,
    MODEL_FILE,
    VERDICT_FILE,
    read_verdict,
    record_data_dir,
    write_verdict,
)
from usqa.trainer.data import load_task_data
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import (
    ExportError,
    ExportOptions,
    calibrate_thresholds,
    export_run,
    score_histogram,
)

from ...support.verdicts import marginal_verdict


@pytest.fixture(scope="module")
def classify_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "classify"
    train(preset("debug", task="classify"), tiny_data, run, progress=False)
    return run


@pytest.fixture(scope="module")
def segment_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "segment"
    train(preset("debug", task="segment"), tiny_data, run, progress=False)
    return run


def test_thresholds_and_histogram_from_validation_scores() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    thresholds = calibrate_thresholds(scores, (0.05, 0.2))
    assert thresholds == pytest.approx({"0.05": 0.05, "0.20": 0.2})
    assert (scores < thresholds["0.20"]).mean() == pytest.approx(0.2, abs=0.01)
    histogram = score_histogram(np.array([0.0, 0.01, 0.5, 1.0, 1.2]), bins=4)
    assert histogram.counts == [2, 0, 1, 2] and histogram.edges == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_export_publishes_a_checked_version_with_the_graph_contract(
    classify_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    version = export_run(
        classify_run,
        registry,
        ExportOptions(name="m", alias=CHAMPION, class_names=("absent", "present"), force=True),
        data_dir=tiny_data,
    )
    loaded = registry.load("m", CHAMPION)  # verifies every sha256
    manifest = loaded.manifest
    assert (version.version, manifest.task, manifest.class_names) == (1, "classify", ["absent", "present"])
    assert set(manifest.thresholds) == {"0.05", "0.10", "0.15", "0.20"}
    assert list(manifest.thresholds.values()) == sorted(manifest.thresholds.values())
    assert manifest.score_histogram is not None and sum(manifest.score_histogram.counts) > 0
    assert all(d <= 1e-4 for d in manifest.metrics["parity_max_abs_diff"].values())
    assert set(manifest.metrics["opencv_dnn"]) == {"controller", "predictor"}
    assert manifest.preprocessing == {"size": 32, "crop": "none", "interpolation": "area"}
    assert manifest.training_config["task"] == "classify"
    # What a frame costs a worker on this machine, the service's first capacity figure (issue #27), on the card.
    assert manifest.cost is not None and manifest.cost.frame_ms > 0 and manifest.cost.threads == 1
    assert manifest.cost.frames >= 100 and manifest.cost.cores >= 1
    card = (registry.root / "m" / "1" / "card.md").read_text()
    assert f"Per-frame cost at export: {manifest.cost.frame_ms:.2f} ms" in card
    size = manifest.preprocessing["size"]
    for role, output, shape in (("controller", "score", (5,)), ("predictor", "probabilities", (5, 2))):
        session = ort.InferenceSession(str(loaded.graph_path(role)), providers=["CPUExecutionProvider"])
        (inp,) = session.get_inputs()
        assert (inp.name, inp.type, inp.shape) == ("frame", "tensor(uint8)", ["N", 1, size, size])
        assert session.get_outputs()[0].name == output
        frames = np.random.default_rng(0).integers(0, 256, (5, 1, size, size), dtype=np.uint8)
        result = session.run(None, {"frame": frames})[0]
        assert result.shape == shape and result.dtype == np.float32
    (scores,) = run_graph_file(loaded.graph_path("controller"), frames[:, 0], [SCORE_OUTPUT], batch=2)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_segmenter_exports_mask_probability(segment_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    version = export_run(
        segment_run, ModelRegistry(tmp_path / "reg"), ExportOptions(force=True), data_dir=tiny_data
    )
    frames = np.zeros((3, 32, 32), np.uint8)
    (out,) = run_graph_file(version.graph_path("predictor"), frames, [MASK_OUTPUT])
    assert out.shape == (3, 1, 32, 32) and ((out >= 0) & (out <= 1)).all()
    assert version.manifest.task == "segment"


def test_int8_quantisation_reports_its_metric_change(
    classify_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    version = export_run(
        classify_run,
        ModelRegistry(tmp_path / "reg"),
        ExportOptions(quantize="int8", quantization_tolerance=1.0, force=True),
        data_dir=tiny_data,
    )
    quantization = version.manifest.metrics["quantization"]
    assert version.manifest.quantization == "int8"
    assert quantization["metric"] == "accuracy" and -1.0 <= quantization["change"] <= 1.0
    (scores,) = run_graph_file(
        version.graph_path("controller"), np.zeros((2, 32, 32), np.uint8), [SCORE_OUTPUT]
    )
    assert scores.shape == (2,)


def test_failed_checks_publish_nothing(classify_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    # A tolerance no model can meet: the gate must refuse, and the registry must stay empty.
    with pytest.raises(ExportError, match="not published"):
        export_run(classify_run, registry, ExportOptions(parity_atol=-1.0, force=True), data_dir=tiny_data)
    with pytest.raises(ExportError, match="not published"):
        export_run(
            classify_run,
            registry,
            ExportOptions(quantize="int8", quantization_tolerance=-1.0, force=True),
            data_dir=tiny_data,
        )
    assert registry.names() == [] or registry.versions("usqa") == []


def test_cli_export_and_its_errors(
    classify_run: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "reg"
    assert (classify_run / DATA_RECORD_FILE).is_file()  # train() records its data set
    (classify_run / DATA_RECORD_FILE).unlink()  # a run from elsewhere, without its data record
    assert main(["export", "--run", str(classify_run), "--registry", str(reg)]) == 2
    assert "pass --data DIR" in capsys.readouterr().err
    record_data_dir(classify_run, tiny_data)
    assert (
        main(["export", "--run", str(classify_run), "--registry", str(reg), "--alias", "champion", "--force"])
        == 0
    )
    out = capsys.readouterr().out
    assert "published usqa version 1" in out and "second runtime" in out
    assert main(["export", "--run", str(tmp_path / "nope"), "--registry", str(reg)]) == 2


def test_export_calibrates_the_display_scale_and_the_scope_check(
    classify_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """Issue #14 end to end on a real (debug) export: what the service judges out of scope, and drift."""
    from tests.support.scope import cardiac_echo, judge, synthetic_frames
    from tests.support.served import cpu_model
    from usqa.service.live.drift import DriftMonitor, ood_reference, score_reference

    registry = ModelRegistry(tmp_path / "reg")
    export_run(
        classify_run, registry, ExportOptions(name="m", alias=CHAMPION, force=True), data_dir=tiny_data
    )
    version = registry.load("m", CHAMPION)
    manifest = version.manifest
    assert manifest.schema_version == 3 and manifest.calibration is not None and manifest.ood is not None
    assert manifest.drift_reference is not None and manifest.drift_reference.ood is not None
    assert (
        manifest.ood.false_alarm_rate == 0.01
        and manifest.metrics["parity_max_abs_diff"]["ood_distance"] < 1e-4
    )
    model = cpu_model(version)
    assert (
        not model.scale.fallback and 0.0 <= model.scale.display_threshold <= 1.0
    )  # a debug controller may tie

    def judged(images: list[np.ndarray]) -> list[tuple[str, str, bool, float, float]]:
        return [
            (f.verdict.verdict, f.verdict.reason, f.amenable, f.score, f.ood_distance or 0.0)
            for f in judge(model, images)
        ]

    echo = cardiac_echo()
    assert len(echo) == 30
    results = judged(synthetic_frames() + echo)
    assert [r[0] for r in results[:2]] == ["no_signal", "no_signal"]
    assert all(r[0] in ("no_signal", "out_of_scope") and not r[2] for r in results), results
    drift = DriftMonitor(score_reference(manifest), 100)
    ood = DriftMonitor(ood_reference(manifest), 100)
    for _, _, _, score, distance in judged(echo + echo):
        drift.add(score)
        ood.add(distance)
    assert (ood.psi() or 0) > 0.25
    # The score's own PSI moves too unless the debug controller scores every frame alike (it often does).
    assert len(set(manifest.drift_reference.score.edges)) <= 2 or (drift.psi() or 0) > 0.25


def test_export_refuses_a_run_whose_controller_does_not_beat_chance(
    classify_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    from usqa.trainer.release.fitting import MSG_KAPPA

    run = tmp_path / "run"
    shutil.copytree(classify_run, run)
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "report.json").write_text(json.dumps({"kappa": {"controller": 0.0}}))
    with pytest.raises(ExportError, match="no better than chance") as refused:
        export_run(run, ModelRegistry(tmp_path / "reg"), data_dir=tiny_data)
    assert str(refused.value) == MSG_KAPPA.format(kappa=0.0)


def make_trivial(run: Path, data: Path) -> None:
    """Replace the run's predictor by the majority-class one and its controller by a constant, re-judged."""
    blob = torch.load(run / MODEL_FILE, weights_only=False)
    config = TrainConfig.from_dict(blob["config"])
    task_data = load_task_data(data, config)
    majority = int(torch.bincount(task_data.train.targets).argmax())
    for key in ("predictor", "controller"):
        for name in list(blob[key]):
            if name.startswith("head."):
                blob[key][name] = torch.zeros_like(blob[key][name])
    blob["predictor"]["head.bias"][majority] = 5.0
    torch.save(blob, run / MODEL_FILE)
    _, controller, predictor, baseline = load_run(run)
    verdict = compute_verdict(config, controller, predictor, baseline, task_data.train, task_data.val)
    write_verdict(verdict.to_dict(), run)


@pytest.fixture(scope="module")
def trivial_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "trivial"
    train(preset("debug", task="classify"), tiny_data, run, progress=False)
    make_trivial(run, tiny_data)
    return run


def test_export_refuses_a_predictor_no_better_than_the_trivial_one(
    trivial_run: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    verdict = read_verdict(trivial_run)
    assert verdict is not None and not verdict["predictor"]["beats_trivial"]
    with pytest.raises(ExportError, match="does not beat the trivial baseline") as refused:
        export_run(trivial_run, registry, ExportOptions(name="m"), data_dir=tiny_data)
    assert str(refused.value) == refusal(verdict, "export")
    assert "gives every validation frame about the same score" in str(refused.value)  # constant controller
    assert registry.names() == []
    forced = export_run(trivial_run, registry, ExportOptions(name="m", force=True), data_dir=tiny_data)
    recorded = forced.manifest.metrics["verdict"]
    assert recorded["forced"] and not recorded["passed"]
    reg = str(tmp_path / "cli")
    assert main(["export", "--run", str(trivial_run), "--registry", reg]) == 2
    assert MSG_TRIVIAL_PREDICTOR.split(":")[0] in capsys.readouterr().err
    assert main(["export", "--run", str(trivial_run), "--registry", reg, "--force"]) == 0
    assert "published because of --force" in capsys.readouterr().out


def test_export_refuses_a_margin_within_its_sampling_error(
    classify_run: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    run = tmp_path / "marginal"
    shutil.copytree(classify_run, run)
    write_verdict(marginal_verdict().to_dict(), run)  # +0.011 over 180 frames, 1 SE 0.018
    registry = ModelRegistry(tmp_path / "reg")
    with pytest.raises(ExportError, match=r"margin \+0\.011 ± 0\.018 \(1 SE over 180 frames\)"):
        export_run(run, registry, ExportOptions(name="m"), data_dir=tiny_data)
    assert registry.names() == []
    assert main(["export", "--run", str(run), "--registry", str(tmp_path / "cli")]) == 2
    assert "beyond chance" in capsys.readouterr().err


def test_a_run_without_a_verdict_is_judged_at_export(
    trivial_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "old"
    run.mkdir()
    for item in trivial_run.iterdir():
        if item.is_file() and item.name != VERDICT_FILE:
            (run / item.name).write_bytes(item.read_bytes())
    with pytest.raises(ExportError, match="does not beat the trivial baseline"):
        export_run(run, ModelRegistry(tmp_path / "reg"), data_dir=tiny_data)
