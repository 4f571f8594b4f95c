"""A serving-only install (no torch): every command that trains says it needs the train extra, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from usqa.cli import MSG_NO_TORCH, RUNTIME_COMMANDS_NEEDING_TORCH, TRAINER_COMMANDS

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs each command in one interpreter where torch cannot be found, as in `pip install 'usqa[service]'`.
WITHOUT_TORCH = """
import contextlib, io, json, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
from usqa.cli import main

outcomes = {}
for command in sys.argv[1:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = main([command])
        except BaseException as exc:  # a traceback is the failure this test is about
            status = f"{type(exc).__name__}: {exc}"
    outcomes[command] = [status, err.getvalue()]
outcomes["torch imported"] = "torch" in sys.modules
print(json.dumps(outcomes))
"""


def test_every_training_command_names_the_train_extra_without_torch(tmp_path: Path) -> None:
    commands = sorted({*TRAINER_COMMANDS, *RUNTIME_COMMANDS_NEEDING_TORCH})
    assert {"demo", "worker", "train", "export"} <= set(commands)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *commands],
        cwd=tmp_path,  # nothing of the checkout's runs/ is touched, whatever a command would do
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcomes.pop("torch imported") is False
    for command in commands:
        status, stderr = outcomes[command]
        assert status == 2, (command, status, stderr)
        assert stderr.strip() == f"usqa: {MSG_NO_TORCH.format(command=command)}", (command, stderr)
