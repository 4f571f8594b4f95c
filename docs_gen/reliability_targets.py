"""The reliability suite's sections and their targets: what docs/reliability.md measures each run against.

`docs_gen.reliability_report` writes the page; `tests/reliability/conftest.py` checks that every test names one
of these sections. A figure a test records is compared with a `Target` when one names it, listed beside the
targets when `HIGHLIGHTS` names it, and shown in a section's "every other recorded figure" list otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Comparison = Literal[">=", "<=", "=="]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    promise: str


@dataclass(frozen=True)
class Target:
    """A promise as a number: `figures` combined (summed counts, the largest peak) compared with `value`."""

    label: str
    figures: tuple[str, ...]
    comparison: Comparison
    value: float
    unit: str = ""

    def met(self, measured: float) -> bool:
        if math.isnan(measured):
            return False
        if self.comparison == ">=":
            return measured >= self.value
        if self.comparison == "<=":
            return measured <= self.value
        return measured == self.value

    @property
    def shown(self) -> str:
        symbol = {">=": "≥", "<=": "≤", "==": "="}[self.comparison]
        return f"{symbol} {number(self.value)}{(' ' + self.unit) if self.unit else ''}"


SECTIONS: tuple[Section, ...] = (
    Section(
        "malformed_input",
        "Malformed input",
        "Property-based fuzzing of the frame decoders (arbitrary bytes; truncated, bit-flipped and overwritten "
        "PNG, JPEG, BMP, TIFF, DICOM and AVI; absurd declared sizes; pydicom's bundled ultrasound files without "
        "pixel data or with lying headers), of the HTTP API from its own OpenAPI document (schemathesis, "
        "positive and negative cases, with, without and with a wrong bearer token, without and with Redis) and "
        "of the /ws/scan protocol (wrong hellos, text where frames belong, garbage JSON, wrong sizes, oversized "
        "messages, floods, protocol garbage, abrupt disconnects). Bad input never gets a 5xx or crashes the "
        "service; every error is the documented JSON shape (WebSocket: the protocol's error message or close "
        "code) with a clear message: non-empty text that is no traceback, no Python repr and no bare "
        "exception name.",
    ),
    Section(
        "load_with_swaps",
        "Load with model swaps",
        "Four /ws/scan streams at 30 fps (10,000 frames in all) while five versions are published and promoted "
        "under them (Redis announcements): no frame fails, every stream runs to its end and sees every swap, "
        "and the p99 round trip in the 1.5 s after each promotion is compared with the steady state's.",
    ),
    Section(
        "faults",
        "Faults",
        "On the deployment's topology without Docker (a private redis-server, API and worker processes): "
        "retraining workers SIGKILLed mid-job (the pool process, or the whole worker with a new one started) "
        "while every visible version is verified in a loop; Redis stopped and restarted under scoring "
        "traffic; the API SIGKILLed and restarted; tampered, truncated and corrupt versions forced onto the "
        "champion alias; a publish onto a full disk. A registry that trusts nothing it reads: manifests naming "
        "a graph outside the version folder or leaving it unhashed, forced onto the champion; a version whose "
        "intact files cannot load, promoted through the API and the CLI. An upload SIGKILLed while unpacking, "
        "then a restart; an upload onto a full disk; a queued job whose Redis restarts without persistence.",
    ),
    Section(
        "resource_bounds",
        "Resource bounds",
        "A 300 fps WebSocket flood and an unpaced burst (memory and drops), oversized bodies on every upload "
        "route (declared and chunked), and more streams than the session limit allows (1013). Hostile DICOM "
        "files that decode to far more than they look (pixel data holding more frames than declared, deflated "
        "data inflating past its header, huge declared compressed frames) on /assess, /cine/frames and "
        "/ws/scan; sixteen idle WebSockets against a seventeenth client, one address asking for every slot, "
        "and foreign browser Origins; a 10 fps stream beside two clients posting files that take the whole "
        "decode budget; resident memory before and after rounds of large requests.",
    ),
    Section(
        "security",
        "Security",
        "Every route enumerated from the app with no, wrong and unconfigured tokens; hostile data-set "
        "archives (zip slip, absolute paths, links); a production start without a token; secrets (the token, "
        "a Redis password) searched for in every answer and log line; the container images' users.",
    ),
)

# The figures' targets, per section. A figure a test records without a target here is still shown.
TARGETS: dict[str, tuple[Target, ...]] = {
    "malformed_input": (
        Target(
            "Cases run (decoders + HTTP + WebSocket)",
            ("decoders.cases", "http.cases", "ws.cases"),
            ">=",
            2000,
        ),
        Target("HTTP responses 5xx (other than a documented 503)", ("http.5xx",), "==", 0),
        Target(
            "Crashes (an exception other than FrameError, no answer, a server traceback or error log)",
            ("decoders.crashes", "http.crashes", "ws.crashes"),
            "==",
            0,
        ),
        Target(
            "Unclear error messages",
            ("decoders.unclear_messages", "http.unclear_messages", "ws.unclear_messages"),
            "==",
            0,
        ),
        Target(
            "HTTP answers off the OpenAPI document (status, content type, schema)",
            ("http.schema_violations",),
            "==",
            0,
        ),
        Target("WebSocket answers off the protocol", ("ws.protocol_violations",), "==", 0),
        Target("Good streams that failed after a bad one", ("ws.good_session_failures",), "==", 0),
        Target(
            "Hangs (a case slower than 5 s)",
            ("decoders.hangs", "http.hangs"),
            "==",
            0,
        ),
        Target("Slowest decoder case", ("decoders.slowest_case_ms",), "<=", 2000, "ms"),
        Target(
            "Slowest refusal of an absurd declared size",
            ("decoders.absurd_size_refusal_ms",),
            "<=",
            100,
            "ms",
        ),
        Target(
            "Peak memory growth while refusing absurd sizes",
            ("decoders.absurd_size_rss_growth_mib",),
            "<=",
            64,
            "MiB",
        ),
    ),
    "load_with_swaps": (
        Target("Frames streamed (4 streams at 30 fps)", ("frames_sent",), ">=", 10_000),
        Target("Versions published and promoted during the streams", ("versions_promoted",), ">=", 5),
        Target(
            "Failed frames (errors, or sent and neither scored nor reported dropped)",
            ("failed_frames",),
            "==",
            0,
        ),
        Target("Streams that stopped or closed abnormally", ("streams_failed",), "==", 0),
        Target("p99 round trip during a swap / steady state", ("p99_swap_over_steady",), "<=", 2),
    ),
    "faults": (
        Target("Worker SIGKILL trials mid-job", ("kill_trials",), ">=", 10),
        Target("Jobs finished after their worker was killed", ("jobs_finished_after_kill",), ">=", 10),
        Target("Partial versions seen while workers were killed", ("partial_versions_seen",), "==", 0),
        Target("Jobs that published more than once", ("jobs_published_more_than_once",), "==", 0),
        Target("Scoring errors while Redis was down", ("scoring_errors_during_outage",), "==", 0),
        Target(
            "Retrain and job calls not answered 503 while Redis was down",
            ("retrain_calls_not_503_while_redis_down",),
            "==",
            0,
        ),
        Target(
            "Retraining back after Redis restarted",
            ("retrain_recovery_after_redis_restart_s",),
            "<=",
            30,
            "s",
        ),
        Target("Damaged versions served", ("scoring_errors_with_damaged_version",), "==", 0),
        Target("API ready again after SIGKILL and restart", ("api_ready_after_kill_s",), "<=", 30, "s"),
        Target("Registry files changed by the API's death", ("registry_files_changed_by_kill",), "==", 0),
        Target("Half versions visible after a full disk", ("half_versions_visible",), "==", 0),
        Target("Temporary folders left by a full disk", ("temporary_folders_left",), "==", 0),
        Target(
            "Untrusted manifests (graph outside its folder, unhashed) served",
            ("registry.untrusted_manifests_served",),
            "==",
            0,
        ),
        Target(
            "Promotions of a version that cannot load accepted (API and CLI)",
            ("registry.unservable_promotions_accepted",),
            "==",
            0,
        ),
        Target(
            "Replicas unready after a refused promotion",
            ("registry.replicas_unready_after_refused_promotion",),
            "==",
            0,
        ),
        Target(
            "Staging folders left after an upload SIGKILLed and a restart",
            ("uploads.staging_left_after_restart",),
            "==",
            0,
        ),
        Target("Full-disk uploads not answered with a JSON 507", ("uploads.full_disk_not_json",), "==", 0),
        Target("Jobs lost by the broker left PENDING", ("jobs.lost_left_pending",), "==", 0),
    ),
    "resource_bounds": (
        Target("Frames sent at 300 fps", ("flood.frames_sent",), ">=", 3000),
        Target(
            "Memory growth over a 300 fps flood (server and client)", ("flood.rss_growth_mb",), "<=", 50, "MB"
        ),
        Target("Peak memory growth during the flood", ("flood.rss_peak_growth_mb",), "<=", 50, "MB"),
        Target(
            "Frames unaccounted for (received ≠ scored + dropped + failed)",
            ("flood.unaccounted_frames",),
            "==",
            0,
        ),
        Target(
            "Drops the stream summaries and /metrics disagree on", ("flood.dropped_metric_mismatch",), "==", 0
        ),
        Target("Frames dropped in an unpaced burst (drops are counted)", ("burst.frames_dropped",), ">=", 1),
        Target(
            "Oversized bodies not answered 413 with the documented message",
            ("bodies.wrong_answers",),
            "==",
            0,
        ),
        Target(
            "Slowest 413 for a declared oversized body",
            ("bodies.slowest_declared_refusal_ms",),
            "<=",
            2000,
            "ms",
        ),
        Target(
            "Streams answered wrongly at the session limit (1013 over it)",
            ("sessions.wrong_answers",),
            "==",
            0,
        ),
        Target("Session refusals /metrics did not count", ("sessions.refused_metric_mismatch",), "==", 0),
        Target("Sessions still open after every stream closed", ("sessions.open_after",), "==", 0),
        Target(
            "Hostile DICOM (excess, deflated, huge or oversized frames) not refused on each route",
            ("decode_budgets.wrong_answers",),
            "==",
            0,
        ),
        Target("Slowest hostile DICOM refusal", ("decode_budgets.slowest_refusal_ms",), "<=", 1000, "ms"),
        Target(
            "Seventeenth clients locked out past the deadline by 16 idle sockets",
            ("slots.lockouts_over_limit",),
            "==",
            0,
        ),
        Target(
            "Streams one address held past USQA_SCAN_SLOTS_PER_CLIENT, or other addresses refused beside it",
            ("slots.per_client_wrong_answers",),
            "==",
            0,
        ),
        Target(
            "Browser Origins answered wrongly (foreign refused, own or listed served)",
            ("origins.wrong_answers",),
            "==",
            0,
        ),
        Target(
            "Stalled bodies not answered 408, or 503 past the in-flight budget",
            ("bodies.stalled_wrong_answers",),
            "==",
            0,
        ),
        Target(
            "Stream p99 round trip beside two hostile uploads", ("isolation.stream_p99_ms",), "<=", 100, "ms"
        ),
        Target(
            "Memory still held after rounds of large requests (48 MB DICOMs, whole-budget cines)",
            ("memory.large_request_retained_mb",),
            "<=",
            50,
            "MB",
        ),
        Target(
            "Peak memory growth refusing a hostile DICOM",
            ("decode_budgets.rss_peak_growth_mb",),
            "<=",
            100,
            "MB",
        ),
    ),
    "security": (
        Target("Routes neither public by intent nor guarded by a token", ("auth.unguarded_routes",), "==", 0),
        Target(
            "Wrong answers to a missing, wrong or unconfigured token (401/403 expected)",
            (
                "auth.control.wrong_answers",
                "auth.control_disabled.wrong_answers",
                "auth.scoring.wrong_answers",
            ),
            "==",
            0,
        ),
        Target("Hostile archives that wrote outside the data root", ("zipslip.escaped_writes",), "==", 0),
        Target("Refused uploads that left folders in the data root", ("zipslip.leftover_folders",), "==", 0),
        Target("Hostile archives not refused with a clear 400/422", ("zipslip.wrong_answers",), "==", 0),
        Target(
            "Production starts without a token that listened", ("production.started_without_token",), "==", 0
        ),
        Target("Secrets in responses or log lines", ("secrets.leaks",), "==", 0),
        Target(
            "Images or compose services running as root",
            ("containers.root_images", "containers.compose_root_overrides"),
            "==",
            0,
        ),
    ),
}

# Figures listed beside the targets in a section's table although they have no target.
HIGHLIGHTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "malformed_input": (
        ("Decoder cases", ("decoders.cases",)),
        ("HTTP requests", ("http.cases",)),
        ("WebSocket streams", ("ws.cases",)),
        ("Good streams after a bad one", ("ws.good_sessions_after_bad",)),
        (
            "Known gaps outside usqa's code (cases; causes below)",
            ("http.known_gap_cases", "ws.known_gap_cases"),
        ),
    ),
    "load_with_swaps": (
        ("p99 round trip, steady state (ms)", ("p99_steady_ms",)),
        ("p99 round trip during swaps (ms)", ("p99_during_swap_ms",)),
        ("Swaps seen by every stream", ("swaps_seen_per_stream",)),
        ("Frames replaced in the server's mailbox and reported (at most 1 %)", ("frames_dropped",)),
    ),
    "faults": (
        ("Pool-process kills", ("worker_kills_pool_process",)),
        ("Whole-worker kills (with a new worker started)", ("worker_kills_whole",)),
        ("Slowest job recovery after a kill (s)", ("slowest_recovery_s",)),
        ("Registry checks during the kills", ("registry_checks_during_kills",)),
        ("Frames scored while Redis was down and back", ("frames_scored_during_outage",)),
        ("Retrain and job calls while Redis was down", ("retrain_calls_while_redis_down",)),
        ("Damaged versions refused (tampered, truncated, corrupt manifest)", ("damaged_versions_refused",)),
        ("Untrusted manifests forced onto the champion", ("registry.untrusted_manifests",)),
        ("Uploads SIGKILLed mid-way", ("uploads.killed_mid_way",)),
    ),
    "resource_bounds": (
        ("Frames scored per second under the flood", ("flood.scored_fps",)),
        ("Drop rate at 300 fps", ("flood.drop_rate",)),
        ("Drop rate of the unpaced burst", ("burst.drop_rate",)),
        ("Oversized-body cases", ("bodies.cases",)),
        ("Hostile DICOM cases (file x route)", ("decode_budgets.cases",)),
        (
            "Peak memory while decoding a file of the whole pixel budget (MB)",
            ("decode_budgets.full_budget_peak_mb",),
        ),
        ("Memory still held after three such decodes (MB)", ("decode_budgets.full_budget_retained_mb",)),
        ("17th client served after, behind 16 silent sockets (s)", ("slots.lockout_silent_s",)),
        ("17th client served after, behind 16 hello-only sockets (s)", ("slots.lockout_hellos_s",)),
        (
            "Streams one address held at once, of 16 asked (USQA_SCAN_SLOTS_PER_CLIENT 4)",
            ("slots.one_address_held",),
        ),
        ("That address served again after its streams fell silent (s)", ("slots.per_client_back_after_s",)),
        ("Peak memory growth during those large requests (MB)", ("memory.large_request_peak_mb",)),
        ("Stream p50 round trip beside hostile uploads (ms)", ("isolation.stream_p50_ms",)),
        ("Sessions refused with 1013", ("sessions.refused_1013",)),
    ),
    "security": (
        ("Routes enumerated from the app", ("auth.routes",)),
        ("Token cases", ("auth.control.cases", "auth.control_disabled.cases", "auth.scoring.cases")),
        ("Hostile archives", ("zipslip.archives",)),
        (
            "Responses and log lines checked for secrets",
            ("secrets.responses_checked", "secrets.log_lines_checked"),
        ),
        ("Container images checked", ("containers.images",)),
    ),
}


def number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
