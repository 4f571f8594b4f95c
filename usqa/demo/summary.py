"""The demo's closing summary: what was trained, whether each version passed its checks and why (with the
split each figure comes from), which version scored which streamed frames, and what to open next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from usqa.demo.view import STREAM_FPS, StreamView

if TYPE_CHECKING:
    from usqa.demo.context import Demo

# The promotion gate's evaluation sets (usqa/trainer/jobs/promotion.py), named by what they are.
GATE_SETS = {
    "new data holdout": "the new data set's holdout split",
    "champion reference holdout": "the holdout split of the champion's own data set",
}
SPLIT_NAMES = {"val": "validation", "holdout": "holdout", "train": "training"}


def verdict_lines(verdict: dict[str, Any]) -> list[str]:
    """A version's acceptance check (verdict.json): its split, the outcome, and each rule with its figures."""
    split = SPLIT_NAMES.get(verdict.get("split", "val"), verdict.get("split"))
    p, c = verdict["predictor"], verdict["controller"]
    failed = {r["code"] for r in verdict["reasons"]}
    kappa = "n/a" if c.get("kappa") is None else f"{c['kappa']:.2f}"
    if c.get("kappa") is None:
        agreement = "not checked (too few labelled frames)"
    else:
        agreement = "it disagrees with them" if "controller_kappa" in failed else "better than chance"
    rules = [
        (
            "trivial_predictor",
            f"predictor {verdict['metric']} {p['metric']:.3f}; the trivial predictor, {p['trivial_rule']}, gets "
            f"{p['trivial']:.3f}: "
            + ("not better beyond chance" if "trivial_predictor" in failed else "better")
            + _margin(p),
        ),
        (
            "controller_no_spread",
            f"controller score spread {c['score_spread']:.3f}: "
            + (
                "every frame gets about the same score"
                if "controller_no_spread" in failed
                else "it ranks frames"
            ),
        ),
        ("controller_kappa", f"controller kappa with the amenability labels {kappa}: {agreement}"),
    ]
    outcome = "FAILED" if failed else "passed"
    head = f"acceptance check on the {split} split ({verdict['frames']} frames): {outcome}"
    return [head] + [f"  {'x' if code in failed else '+'} {text}" for code, text in rules]


def _margin(predictor: dict[str, Any]) -> str:
    """The paired margin and its sampling error, where the verdict records them (issue 24)."""
    if predictor.get("margin_se") is None:
        return ""
    return f" (margin {predictor['margin']:+.3f} ± {predictor['margin_se']:.3f}, 1 SE over {predictor['margin_frames']} frames)"


def summary(demo: Demo, seconds: float) -> list[str]:
    facts, view = demo.facts, demo.view
    lines = [f"demo finished in {seconds:.0f} s; every output is under {demo.out}", "", "What happened:"]
    first = facts.first
    if first is not None:
        splits = ", ".join(f"{SPLIT_NAMES.get(k, k)} {v}" for k, v in first.splits.items())
        lines.append(
            f"  - data: {first.frames} simulated transrectal prostate frames (data set {first.id}: {splits})"
        )
    if facts.heat_steps:
        lines.append(
            f"  - trained: a backbone heated with noise masks ({facts.heat_steps} steps), then the "
            f"controller/predictor pair on it ({demo.args.config} budget, {facts.train_seconds:.0f} s; classify "
            f"gland / no gland, REINFORCE, weighted reward)"
        )
    if facts.version:
        lines.extend(_first_version(demo))
    lines.extend(_retraining(demo))
    lines.extend(_stream(view))
    lines += ["", "What to open next:"]
    lines += [
        f"  - {demo.out / 'run' / 'eval' / 'report.json'}: v1's rejection curves and kappa on the holdout split",
        f"  - {demo.out / 'contact_sheet.png'}: what the simulated frames look like",
        f"  - {demo.logs}: the API's and the worker's logs (what the job did, step by step)",
        "  - `usqa serve`, then http://127.0.0.1:8000/ : the live page with the shipped model",
        "  - docs/recipe.md (what makes a model pass its checks), docs/retraining.md (jobs and the gate)",
    ]
    return lines


def _first_version(demo: Demo) -> list[str]:
    facts = demo.facts
    lines = [f"  - v{facts.version}, published as champion:"]
    if facts.verdict is not None:
        lines.extend(f"      {line}" for line in verdict_lines(facts.verdict))
        if not facts.verdict["passed"]:
            lines.append("      published anyway: the demo forces it so the service has a model to show")
    h = facts.holdout
    if h:
        lines.append(
            f"      on the holdout split ({h['frames']} frames), {h['rejection']:.0%} of frames rejected: "
            f"{h['metric']} {h['controller']:.3f} on the frames kept when the controller chooses which, "
            f"{h['random']:.3f} when chance does; kappa with the amenability labels {h['kappa']:.2f}"
        )
    return lines


def _retraining(demo: Demo) -> list[str]:
    facts, job = demo.facts, demo.facts.job
    if job is None:
        return []
    second = facts.second
    source = (
        f"data set {second.id} ({second.frames} frames, uploaded)"
        if second is not None
        else "a second data set"
    )
    if job.state != "SUCCESS" or job.report is None:
        return [f"  - retraining on {source} through the API: job {job.id} ended {job.state}: {job.error}"]
    report = job.report
    lines = [f"  - v{report['version']}, retrained on {source} through the API (job {job.id}):"]
    if report.get("verdict"):
        lines.extend(f"      {line}" for line in verdict_lines(report["verdict"]))
        if not report["verdict"]["passed"]:
            lines.append("      gated anyway: the demo's job sets force, as for v1")
    gate = report.get("gate") or {}
    for s in gate.get("sets", []):
        if s.get("challenger") is not None and s.get("champion") is not None:
            lines.append(
                f"      promotion gate on {GATE_SETS.get(s['name'], s['name'])} ({s['dataset']}, {s['frames']} frames): "
                f"{gate.get('metric')} {s['challenger']:.3f} for v{report['version']} vs {s['champion']:.3f} "
                f"for the champion (margin {gate.get('margin')})"
            )
    compared = [s for s in gate.get("sets", []) if s.get("passed") is not None]
    if report["promoted"] and compared:
        lines.append(
            "      promoted to champion: not worse than the champion (within the margin) on either set"
        )
    else:
        outcome = "promoted to champion" if report["promoted"] else "not promoted (v1 stays champion)"
        lines.append(f"      {outcome}: {gate.get('reason', '')}")
    return lines


def _stream(view: StreamView) -> list[str]:
    head = (
        f"  - the stream: a 150-frame simulated cine looped at {STREAM_FPS:.0f} fps through /ws/scan; "
        f"streamed {view.results} frames ({view.amenable} amenable, {view.errors} errors)"
    )
    lines = [head]
    for span in view.spans:
        lines.append(f"      v{span.version} scored frames {span.first}-{span.last} ({span.frames} frames)")
    for old, new, before in view.swaps:
        lines.append(
            f"      the stream swapped v{old} -> v{new} after {before} scored frames, without reconnecting"
        )
    if view.failure:
        lines.append(f"      the stream failed: {view.failure}")
    return lines
