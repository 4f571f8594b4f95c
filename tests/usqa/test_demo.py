"""`usqa demo` end to end (debug budget): every stage, the services, the stream, a retrain and its swap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from usqa.cli import main
from usqa.local_stack import free_port
from usqa.service.registry import CHAMPION, ModelRegistry

pytestmark = pytest.mark.slow


@pytest.mark.torch  # the demo trains a model
@pytest.mark.parametrize("broker", ["auto", "embedded"])
def test_demo_runs_the_whole_loop_and_ends_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, broker: str
) -> None:
    # auto without USQA_REDIS_URL: the demo starts its own redis-server; embedded: no Redis at all.
    monkeypatch.delenv("USQA_REDIS_URL", raising=False)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--frames", "240", "--config", "debug", "--port", str(free_port())]
    assert main([*args, "--broker", broker]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    for stage in range(1, 10):
        assert f"[{stage}/9]" in printed
    # Quiet by default: the libraries' log lines and the export's passes stay out of the terminal.
    assert " INFO " not in printed + captured.err and "onnxscript" not in printed + captured.err
    assert ("local redis-server" if broker == "auto" else "embedded broker") in printed
    assert "live page: http://127.0.0.1:" in printed and "demo finished" in printed
    assert (out / "contact_sheet.png").is_file() and (out / "heat" / "backbone.pt").is_file()
    report = json.loads((out / "run" / "eval" / "report.json").read_text())
    assert report["task"] == "classify" and "controller" in report["curves"]

    registry = ModelRegistry(out / "models")
    assert registry.versions("usqa-demo") == [1, 2]
    second = registry.manifest("usqa-demo", 2)
    assert second.job_id is not None and second.dataset is not None
    streamed = re.search(r"streamed (\d+) frames \((\d+) amenable, (\d+) errors\)", printed)
    assert streamed is not None and int(streamed.group(1)) > 50 and streamed.group(3) == "0"
    repo = Path(__file__).resolve().parents[2]
    assert not (repo / "control").exists(), "the embedded broker wrote outside the demo's folder"
    promoted = registry.aliases("usqa-demo").current[CHAMPION] == 2
    assert ("v2 promoted to champion" in printed) == promoted
    # The stream shows the swap exactly when the gate promoted the new version, and v2 then scores frames.
    assert ("the stream swapped v1 -> v2" in printed) == promoted
    assert (re.search(r"v2 scored frames \d+-\d+", printed) is not None) == promoted
    assert re.search(r"v1 scored frames 0-\d+", printed)
    # A switch of exam: the shipped thyroid model, served behind the demo's registry, takes over a stream.
    switched = re.search(
        r"a thyroid sweep on usqa-demo: (.*); the stream switched to usqa-thyroid v\d+: (.*)", printed
    )
    assert switched is not None, printed
    assert "good" in switched.group(2)
    # The summary names the split of every figure it gives.
    summary = printed.split("What happened:", 1)[1]
    assert "acceptance check on the validation split" in summary and "on the holdout split (" in summary
    assert "promotion gate on the new data set's holdout split" in summary or "has no champion" in summary
    assert "What to open next:" in summary


def test_trainer_commands_do_not_load_torch_for_runtime_commands() -> None:
    import subprocess
    import sys

    code = "import sys; from usqa.cli import build_parser; build_parser(['serve']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
