"""docs/service.md's example exchanges, produced by the shipped model: `python -m docs_gen.service_example`.

One simulated transrectal frame goes through the real app (`create_app` over `models/`, in process), sent by
`usqa.client` as an `/assess` upload and as one `/ws/scan` frame; the answers replace the marked blocks of docs/service.md, so the
classes, threshold and scores there are always the shipped model's. `make default-model` runs it after
publishing a new default model. Timings are whatever this machine measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import uvicorn

from docs_gen.blocks import replace_block
from usqa.client import Client
from usqa.service.api.app import create_app
from usqa.service.settings import Settings
from usqa.service.simulator import simulate_cine

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE = "docs_gen.service_example"
DOC = REPO_ROOT / "docs" / "service.md"
PRESET = "transrectal_prostate"
SEED = 11
FRAMES = 24
START_TIMEOUT_S = 60.0
TIMING_KEYS = {"timings", "latency_ms"}
# A bracket pair with no bracket inside, spread over lines by json.dumps(indent=2): joined onto one line.
INNERMOST = re.compile(r"([\[{])\n\s*([^\[\]{}]*?)\n\s*([\]}])")


def _rounded(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, 2 if k in TIMING_KEYS else digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


@contextlib.contextmanager
def _served(settings: Settings) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the app did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def exchanges(registry: Path = REPO_ROOT / "models") -> dict[str, Any]:
    """The shipped model's answers for one simulated frame: `assess`, and the stream's `ready`/`result`."""
    settings = Settings(
        registry=registry,
        shipped_registry=False,
        providers=("CPUExecutionProvider",),
        inference_workers=1,
        warmup_runs=1,
        redis_url=None,
        api_token=None,
    )
    frames = [cv2.imencode(".png", f.image)[1].tobytes() for f in simulate_cine(PRESET, FRAMES, seed=SEED)]
    with _served(settings) as host, Client(f"http://{host}", retries=0) as usqa:
        chosen: tuple[bytes, dict[str, Any]] | None = None
        for png in frames:
            assess = usqa.assess(png).response
            frame = assess["frames"][0]
            # The example shows a good view: amenable, and the gland (the last class) predicted if any frame is.
            if frame["amenable"] and chosen is None:
                chosen = (png, assess)
            if frame["amenable"] and frame["prediction"]["label"] == assess["model"]["class_names"][-1]:
                chosen = (png, assess)
                break
        if chosen is None:
            raise SystemExit(f"the model calls none of {FRAMES} simulated frames amenable")
        png, assess = chosen
        # One frame through /ws/scan; the messages in the order they came: ready, result, summary.
        messages: list[dict[str, Any]] = []
        usqa.play([png], fps=None, on_message=lambda message, _: messages.append(message))
    ready, result = messages[0], messages[1]
    ready["session"] = ready["session"][:4] + "..."
    return {"assess": _rounded(assess), "ready": _rounded(ready), "result": _rounded(result)}


def _json(value: Any, width: int = 110) -> str:
    """json.dumps(indent=2), with every bracket pair that fits on one line of `width` joined onto it."""
    text = json.dumps(value, indent=2)

    def join(match: re.Match[str]) -> str:
        one_line = match[1] + re.sub(r",\n\s*", ", ", match[2]) + match[3]
        indent = len(text[: match.start()].rsplit("\n", 1)[-1])
        return one_line if indent + len(one_line) <= width else match[0]

    while (joined := INNERMOST.sub(join, text)) != text:
        text = joined
    return text


def render(found: dict[str, Any]) -> dict[str, str]:
    """Each marked block's new body (a fenced JSON block) by name."""
    assess = _json(found["assess"])
    stream = "\n".join(_json(found[k]) for k in ("ready", "result"))
    return {"assess": f"```json\n{assess}\n```\n", "scan": f"```json\n{stream}\n```\n"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--registry", type=Path, default=REPO_ROOT / "models")
    args = parser.parse_args(argv)
    for name, body in render(exchanges(args.registry)).items():
        replace_block(DOC, name, body, module=MODULE)
    print(f"rewrote the generated blocks of {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
