"""`usqa demo`: the main job on one machine, with embedded defaults, ending with a summary in plain words.

The demo is the list of stages in `STAGES`, run in order: simulate a labelled data set, heat a backbone, train
the controller/predictor pair, publish it as champion, start the API and a worker, stream a simulated cine
through /ws/scan, upload a second data set and retrain through the API while the stream goes on, and watch the
stream until the new version (if the promotion gate let it in) has scored frames, and switch a stream to the
shipped thyroid exam. Libraries' log lines stay
quiet unless --verbose; the API's and the worker's logs are written under the output folder.

This module stays torch-free (`usqa --help` lists the demo); the stages import the trainer when they run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from usqa.demo.context import Demo

DEMO_FRAMES = 1200
DEMO_SEED = 0


class Stage(NamedTuple):
    title: str  # what the stage is about to do, printed before it runs
    run: Callable[[Demo], str]  # does the stage, returns what it did in one line


def stages() -> tuple[Stage, ...]:
    """The demo, in order (imported when it runs: the first stages need torch)."""
    from usqa.demo import serving, training

    return (
        Stage("simulate a labelled data set", training.simulate),
        Stage("heat a backbone with noise masks", training.heat_backbone),
        Stage("train the controller/predictor pair and evaluate it", training.train_pair),
        Stage("export it and publish it as the champion (v1)", training.publish),
        Stage("start the API and a retraining worker", serving.serve),
        Stage("stream a simulated cine through /ws/scan (it goes on in the background)", serving.stream),
        Stage("upload a second data set and retrain through the API", serving.retrain),
        Stage("keep streaming until the version now serving has scored frames", serving.watch_swap),
        Stage(
            "switch exams: a thyroid sweep, then the stream switched to the thyroid model",
            serving.switch_exam,
        ),
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the main job end to end on this machine")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where every output goes")
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--config", default="demo", help="training budget preset (debug for a quick look)")
    parser.add_argument("--port", type=int, default=8000, help="API port (a free one if this is taken)")
    parser.add_argument(
        "--broker",
        choices=["auto", "redis", "embedded"],
        default="auto",
        help="auto: USQA_REDIS_URL, else a local redis-server, else the embedded broker",
    )
    parser.add_argument(
        "--verbose",
        dest="library_logs",
        action="store_true",
        help="show the libraries' log lines and progress bars (quiet by default)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from usqa.demo.context import Demo
    from usqa.demo.summary import summary

    demo = Demo.create(args, verbose=bool(args.library_logs or getattr(args, "verbose", False)))
    steps = stages()
    with demo:
        for number, stage in enumerate(steps, 1):
            print(f"[{number}/{len(steps)}] {stage.title}", flush=True)
            print(f"    -> {stage.run(demo)}", flush=True)
    print()
    for line in summary(demo, time.perf_counter() - demo.started):
        print(line)
    return 0 if demo.view.failure is None and demo.view.errors == 0 else 1
