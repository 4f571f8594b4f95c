"""usqa.client's core without a server: server-sent events, the retry policy, the requests it builds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from usqa.client import UsqaError
from usqa.client.archives import zip_folder
from usqa.client.core import EventParser, RetryPolicy, job_of_event, retrain_request, upload_request


def test_the_event_parser_reads_server_sent_events() -> None:
    lines = [
        ": keep-alive",
        "",
        "event: status",
        'data: {"id": "ab", "state": "PROGRESS",',
        'data: "progress": {}}',
    ]
    lines += ["", "event: end", 'data: {"state": "SUCCESS"}', ""]
    parser = EventParser()
    events = [e for line in lines if (e := parser.feed(line)) is not None]
    assert [e.event for e in events] == ["status", "end"]
    job = job_of_event(events[0])
    assert job is not None and job.state == "PROGRESS" and not job.finished
    assert job_of_event(events[1]) is None
    parser.feed("event: error")
    parser.feed('data: {"code": "unavailable", "detail": "the job queue is unreachable"}')
    error = parser.feed("")
    assert error is not None
    with pytest.raises(UsqaError, match="unreachable"):
        job_of_event(error)


def test_the_retry_policy_and_the_idempotency_key() -> None:
    policy = RetryPolicy(retries=2, backoff_s=0.1)
    busy = httpx.Response(503, headers={"Retry-After": "3"})
    assert policy.after_response(0, busy) == 3.0 and policy.after_response(2, busy) is None
    assert policy.after_response(0, httpx.Response(429)) == 0.1
    assert policy.after_response(1, httpx.Response(503)) == pytest.approx(0.2)
    assert policy.after_response(0, httpx.Response(422)) is None
    assert (
        policy.after_scan_refusal(0, 1013, None) == 0.1 and policy.after_scan_refusal(0, 1008, None) is None
    )
    assert policy.after_scan_refusal(0, None, 403) is None and policy.after_scan_refusal(1, None, None) == 0.2
    # One key per call (a retry of that call resends it), unless the caller gives one.
    first, second = retrain_request({"dataset": "x"}), retrain_request({"dataset": "x"})
    assert first.options["headers"]["Idempotency-Key"] != second.options["headers"]["Idempotency-Key"]
    assert retrain_request({}, "mine").options["headers"] == {"Idempotency-Key": "mine"}


def test_upload_requests_take_a_folder_an_archive_or_bytes(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "labels.csv").write_text("frame,label\n")
    archive = zip_folder(tmp_path / "set", tmp_path / "set.zip")
    assert upload_request(tmp_path / "set").options["files"]["file"][0] == "set.zip"
    assert upload_request(archive).options["files"]["file"] == ("set.zip", archive.read_bytes())
    assert upload_request(b"x", "a.tar").options["files"]["file"] == ("a.tar", b"x")


def test_the_client_knows_the_services_finished_states() -> None:
    from usqa.client.core import TERMINAL_STATES
    from usqa.service.jobs.queue import TERMINAL_STATES as SERVICE_STATES

    assert TERMINAL_STATES == SERVICE_STATES


def test_nothing_outside_the_client_speaks_the_stream_or_the_control_routes_by_hand() -> None:
    """One client: outside usqa/client (and the service that answers), no WebSocket client and no hand-built
    request to /datasets, /retrain, /jobs or a model's control routes (tests may, when they test the raw
    protocol)."""
    import re

    repo = Path(__file__).resolve().parents[2]
    by_hand = re.compile(
        r"^\s*(import websockets|from websockets)|\.(post|get|delete|stream)\(\s*(\"[A-Z]+\",\s*)?f?\"/(retrain|datasets|jobs|models/[^\"]*/(promote|rollback))",
        re.MULTILINE,
    )
    found = [
        f"{path.relative_to(repo)}: {match.group(0).strip()}"
        for root in ("usqa", "bench", "docs_gen", "scripts", "experiments")
        for path in sorted((repo / root).rglob("*.py"))
        if not path.is_relative_to(repo / "usqa" / "client")
        and not path.is_relative_to(repo / "usqa" / "service")
        for match in by_hand.finditer(path.read_text())
    ]
    # The compose test checks, as a user would by hand, that GET /jobs without the token is refused.
    allowed = ['scripts/compose_test/user_paths.py: .get("/jobs']
    assert found == allowed, found
