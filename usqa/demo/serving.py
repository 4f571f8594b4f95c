"""The demo's service stages: the API and a worker started, a cine streamed through /ws/scan, a second data
set uploaded and retrained through the API while the stream goes on, the stream watched for the swap, and a
switch of exam (issue #27): a thyroid sweep on the demo's prostate exam, then the same stream switched to the
shipped thyroid exam."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import cv2

from usqa import local_stack
from usqa.client import Client, Job
from usqa.contracts.protocol import MessageType, Verdict
from usqa.demo.context import CLASS_NAMES, PRESET, SUBJECTS, Demo
from usqa.demo.training import BACKBONE_NAME, FRAME_SIZE
from usqa.demo.view import QUIET_EVERY, STREAM_FPS, VIEW_EVERY
from usqa.service.simulator import simulate_cine, write_dataset

CINE_FRAMES = 150
SECOND_FRAMES = 1600
WARM_STREAM_S = 6.0
SWAP_WAIT_S = 20.0
# Frames the new version (or, without a promotion, the old one) scores after the job, before the stream ends.
AFTER_JOB_FRAMES = 45
# The second exam the demo switches to: the shipped thyroid model, served behind the demo's registry.
SECOND_EXAM = "usqa-thyroid"
SECOND_PRESET = "linear_thyroid"
SWITCH_FRAMES = 12
JOB_TIMEOUT_S = 900.0


def serve(demo: Demo) -> str:
    broker = demo.choose_broker()
    demo.facts.broker = broker.description
    env = demo.service_env(broker)
    port = demo.args.port if local_stack.port_is_free(demo.args.port) else local_stack.free_port()
    demo.processes.append(local_stack.start_api(port, env, demo.logs / "api.log"))
    demo.processes.append(local_stack.start_worker(env, demo.logs / "worker.log"))
    demo.base = f"http://127.0.0.1:{port}"
    print(f"    live page: {demo.base}/  (token for the control routes: {demo.token}); logs in {demo.logs}")
    return f"started the API ({demo.base}) and a worker; jobs go through the {broker.description}"


def stream(demo: Demo) -> str:
    """A simulated cine, looped at a scanner's frame rate through /ws/scan until the last stage ends."""
    cine = [f.image for f in simulate_cine(PRESET, CINE_FRAMES, seed=demo.args.seed + 1)]
    demo.view.start(demo.base, demo.token, cine)
    time.sleep(WARM_STREAM_S)
    return (
        f"streaming a simulated cine at {STREAM_FPS:.0f} fps through /ws/scan in the background "
        f"(every {VIEW_EVERY}th frame shown, then every {QUIET_EVERY}th)"
    )


def retrain(demo: Demo) -> str:
    """A second data set through POST /datasets, a job through POST /retrain, followed to its end."""
    second = demo.out / "source" / "second"
    write_dataset(
        second,
        frames=SECOND_FRAMES,
        subjects=SUBJECTS + 8,
        seed=demo.args.seed + 100,
        size=FRAME_SIZE,
        preset=PRESET,
    )
    with Client(demo.base, token=demo.token, timeout_s=120) as usqa:
        dataset = usqa.upload(second)
        demo.facts.second = dataset
        print(f"    uploaded data set {dataset.id} ({dataset.frames} frames, splits {dataset.splits})")
        spec = {
            "dataset": dataset.id,
            "task": "classify",
            "config": demo.args.config,
            "backbone": BACKBONE_NAME,
            "class_names": list(CLASS_NAMES),
            "force": True,  # as for v1: publish and gate even a run whose own check failed
        }
        job = usqa.retrain(spec)
        print(f"    queued retraining job {job.id}; following its progress")
        last: tuple[object, ...] = ()
        for status in usqa.follow_job(job.id, timeout_s=JOB_TIMEOUT_S):
            if (step := _progress_step(status)) != last:  # a line per stage and per quarter of its episodes
                print(_progress_line(status), flush=True)
                last = step
            job = status
    demo.facts.job = job
    if not job.finished or job.state != "SUCCESS":
        return f"retraining job {job.id} ended {job.state}: {job.error}"
    report: dict[str, Any] = job.report or {}
    outcome = "promoted to champion" if report.get("promoted") else "kept as challenger (not promoted)"
    return f"retrained through the API: v{report.get('version')} {outcome}"


def watch_swap(demo: Demo) -> str:
    """Keep streaming until the version now serving has scored frames of its own, then end the stream."""
    job = demo.facts.job
    promoted = _promoted(job)
    if promoted is not None:
        local_stack.wait_for(lambda: demo.view.swaps, SWAP_WAIT_S, "the swap to reach the stream")
        version, goal = promoted, AFTER_JOB_FRAMES
    else:
        version = demo.view.spans[-1].version if demo.view.spans else demo.facts.version
        goal = demo.view.frames_by(version) + AFTER_JOB_FRAMES
    local_stack.wait_for(
        lambda: demo.view.frames_by(version) >= goal or demo.view.failure,
        AFTER_JOB_FRAMES / STREAM_FPS + SWAP_WAIT_S,
        f"v{version} to score {goal} frames",
    )
    demo.view.finish()
    if promoted is not None:
        return (
            f"v{version} took over the stream and scored {demo.view.frames_by(version)} frames; stream ended"
        )
    return f"v{version} went on scoring the stream ({demo.view.frames_by(version)} frames); stream ended"


def _promoted(job: Job | None) -> int | None:
    """The version the job promoted to champion, or None."""
    if job is None or job.state != "SUCCESS" or not (job.report or {}).get("promoted"):
        return None
    return int((job.report or {})["version"])


def _progress_step(job: Job) -> tuple[object, ...]:
    progress = job.progress
    episodes = int(progress.get("episodes") or 0)
    quarter = int(progress.get("episode") or 0) * 4 // episodes if episodes else 0
    return (job.state, progress.get("stage"), progress.get("message"), quarter)


def _progress_line(job: Job) -> str:
    progress = job.progress
    if progress.get("episode"):
        detail = (
            f"episode {progress['episode']}/{progress['episodes']}, eta {progress.get('eta_s') or 0:.0f} s"
        )
    else:
        detail = progress.get("message") or ""
    return f"    job {job.state:<8s} {progress.get('stage') or ''} {detail}".rstrip()


def switch_exam(demo: Demo) -> str:
    """A thyroid sweep streamed on the demo's prostate exam (out of scope, and which exam it looks like), then the
    same stream switched to the thyroid exam by a hello, as the live page's exam picker does."""
    with Client(demo.base, token=demo.token) as usqa:
        served = [m["name"] for m in usqa.exams()["models"]]
        if SECOND_EXAM not in served:
            return f"no {SECOND_EXAM} is served here (served: {', '.join(served)}); no switch of exam to show"
        sweep = [f.image for f in simulate_cine(SECOND_PRESET, 2 * SWITCH_FRAMES, seed=demo.args.seed + 7)]
        with usqa.open_scan() as (ws, ready):
            before = [_result(ws, frame) for frame in sweep[:SWITCH_FRAMES]]
            ws.send(json.dumps({"type": MessageType.HELLO, "model": SECOND_EXAM}))
            swap = _next(ws, MessageType.MODEL_SWAP)
            after = [_result(ws, frame) for frame in sweep[SWITCH_FRAMES:]]
    hints = Counter(m.get("looks_like") for m in before if m["verdict"] == Verdict.OUT_OF_SCOPE)
    named = ", ".join(f"{count} 'looks like {name}'" for name, count in hints.items() if name) or "none named"
    was = ", ".join(f"{n} {v}" for v, n in Counter(m["verdict"] for m in before).items())
    now = ", ".join(f"{n} {v}" for v, n in Counter(m["verdict"] for m in after).items())
    return (
        f"a thyroid sweep on {ready['model']['name']}: {was} ({named}); the stream switched to "
        f"{swap['model']['name']} v{swap['model']['version']}: {now}"
    )


def _result(ws: Any, frame: Any) -> dict[str, Any]:
    ws.send(bytes(cv2.imencode(".png", frame)[1].tobytes()))
    return _next(ws, MessageType.RESULT)


def _next(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=30))
        if message["type"] == kind:
            return message
