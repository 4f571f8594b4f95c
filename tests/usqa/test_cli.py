"""`usqa ... | head`: a reader that leaves early ends the command quietly, as it would end `cat`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from usqa.cli import EXIT_READER_GONE

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["models", "show", "usqa-prostate"], EXIT_READER_GONE),
        (["models", "list"], EXIT_READER_GONE),
        # argparse prints these itself, drops a failed write and exits 0.
        (["--version"], 0),
        (["--help"], 0),
    ],
)
def test_a_closed_pipe_ends_a_printing_command_without_a_traceback(args: list[str], status: int) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write meets a broken pipe
    try:
        result = subprocess.run(
            [sys.executable, "-m", "usqa", *args],
            cwd=REPO_ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr


def test_head_gets_the_first_line_and_the_command_ends_cleanly() -> None:
    result = subprocess.run(
        f"set -o pipefail; {sys.executable} -m usqa models show usqa-prostate | head -1",
        shell=True,
        executable="/bin/bash",
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout == "{\n" and "Traceback" not in result.stderr
    assert result.returncode in (0, EXIT_READER_GONE)  # 0 when head read before it closed
