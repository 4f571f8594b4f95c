"""Security against one running server: the bearer token guards every control route (enumerated from the app,
not listed by hand) and, when configured, the scoring and session routes; data-set uploads cannot write
outside the data root (zip slip); no secret reaches a response or the log (every answer and log line of this
module's server is searched). The server without a token, the production start-up refusal and the images'
user are in test_security_configuration.py; the harness is tests/support/security.py.

Servers are real uvicorn servers on 127.0.0.1 in this process; the Redis URL points at a closed port of
127.0.0.1, so nothing leaves the machine. Every loop is bounded by a count and a timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.hostile_archives import Hostile, build_archive, dataset_files, hostile_members, tree
from tests.support.security import (
    SECRET_TOKEN,
    SECRETS,
    TOKEN,
    UNREACHABLE_REDIS,
    AuthTally,
    EveryRecord,
    Secured,
    Transcript,
    endpoints_of,
    every_record,
    refusal_headers,
    request_kwargs,
    upload,
    with_headers,
    ws_answer,
)
from usqa.contracts.protocol import CloseCode
from usqa.service.api.errors import TOKEN_MISSING
from usqa.service.api.scan_messages import MSG_TOKEN_REASON

from ..service.conftest import MODEL_NAME, frame_of_level, png_bytes
from .conftest import Figures, cases, error_body_problem, service_under_test, unclear_reason

SECTION = "security"


@pytest.fixture(scope="module")
def secured(reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    handler = EveryRecord()
    # The root logger from before the start (the lifespan's records); uvicorn's own loggers after it,
    # since uvicorn's logging configuration replaces their handlers when a server is built.
    with contextlib.ExitStack() as stack:
        stack.enter_context(every_record(handler, ""))
        running = stack.enter_context(
            service_under_test(
                reliability_registry,
                tmp_path_factory.mktemp("secured"),
                api_token=SECRET_TOKEN,
                require_token_for_scoring=True,
                redis_url=UNREACHABLE_REDIS,
            )
        )
        secured = Secured(running, handler, Transcript(), stack.enter_context(requests.Session()))
        secured.listen()
        stack.callback(secured.stop_listening)
        yield secured


def test_control_routes_refuse_without_the_token(secured: Secured, figures: Figures) -> None:
    endpoints, _ = endpoints_of(secured.service.live.app)
    control = [e for e in endpoints if e.guard == "control"]
    tally = AuthTally()
    mark = secured.service.log.mark()
    for endpoint in control:
        for label, headers, code, detail in refusal_headers():
            response = secured.call(
                endpoint.method, endpoint.concrete(), label, **with_headers(endpoint, headers)
            )
            tally.expect_refusal(f"{endpoint.label} [{label}]", response, 401, code, detail)
        response = secured.call(
            endpoint.method, endpoint.concrete(), "token", **with_headers(endpoint, TOKEN)
        )
        tally.expect_passed(f"{endpoint.label} [token]", response)
    # Without the token, a body of the wrong shape or no JSON at all changes nothing: the token comes first.
    for endpoint in [e for e in control if e.method == "POST" and "json" in request_kwargs(e)]:
        for label, body in [("wrong shape", b'{"unexpected": [1, 2]}'), ("not JSON", b"{not json")]:
            response = secured.call(
                endpoint.method,
                endpoint.concrete(),
                label,
                headers={"Content-Type": "application/json"},
                data=body,
            )
            tally.expect_refusal(
                f"{endpoint.label} [no token, {label} body]", response, 401, "token_missing", TOKEN_MISSING
            )
    figures.peak("auth.control_routes_checked", len(control))
    tally.finish(figures, "auth.control")
    logged = secured.service.log.since(mark)
    assert not logged, f"refusing tokens logged errors: {logged[:3]}"


def test_scoring_routes_need_the_token_when_configured(secured: Secured, figures: Figures) -> None:
    endpoints, _ = endpoints_of(secured.service.live.app)
    scoring = [e for e in endpoints if e.guard == "scoring"]
    tally = AuthTally()
    for endpoint in [e for e in scoring if e.method != "WS"]:
        params = {"frames": 2} if endpoint.path == "/cine/demo" else None
        for label, headers, code, detail in refusal_headers():
            kwargs = with_headers(endpoint, headers)
            response = secured.call(endpoint.method, endpoint.concrete(), label, params=params, **kwargs)
            tally.expect_refusal(f"{endpoint.label} [{label}]", response, 401, code, detail)
        kwargs = with_headers(endpoint, TOKEN)
        response = secured.call(endpoint.method, endpoint.concrete(), "token", params=params, **kwargs)
        tally.expect_passed(f"{endpoint.label} [token]", response, {200})
    secured.listen()
    for endpoint in [e for e in scoring if e.method == "WS"]:
        url = f"ws://127.0.0.1:{secured.service.live.port}{endpoint.concrete()}"
        refusals: list[tuple[str, str, dict[str, str] | None]] = [
            (label, url, headers) for label, headers, _, _ in refusal_headers()
        ]
        refusals.append(("wrong query token", f"{url}?token=not-the-token", None))
        for label, target, ws_headers in refusals:
            tally.cases += 1
            answer = ws_answer(target, ws_headers)
            if answer != ("closed", CloseCode.POLICY, MSG_TOKEN_REASON):
                tally.problems.append(
                    f"{endpoint.label} [{label}]: {answer}, expected close {CloseCode.POLICY}"
                )
        accepted: list[tuple[str, str, dict[str, str] | None]] = [
            ("header token", url, TOKEN),
            ("query token", f"{url}?token={SECRET_TOKEN}", None),
        ]
        for label, target, ws_headers in accepted:
            tally.cases += 1
            answer = ws_answer(target, ws_headers)
            if answer[0] != "ready":
                tally.problems.append(f"{endpoint.label} [{label}]: {answer} with the token")
    figures.peak("auth.scoring_routes_checked", len(scoring))
    tally.finish(figures, "auth.scoring")


def test_session_routes_need_the_token_when_configured(secured: Secured, figures: Figures) -> None:
    """Session reports and captures hold patient images: refused without the token, whatever scoring needs."""
    endpoints, _ = endpoints_of(secured.service.live.app)
    records = [e for e in endpoints if e.guard == "records"]
    tally = AuthTally()
    for endpoint in records:
        for label, headers, code, detail in refusal_headers():
            response = secured.call(endpoint.method, endpoint.concrete(), label, headers=headers)
            tally.expect_refusal(f"{endpoint.label} [{label}]", response, 401, code, detail)
        response = secured.call(endpoint.method, endpoint.concrete(), "token", headers=TOKEN)
        tally.expect_passed(f"{endpoint.label} [token]", response, {200, 404})
    figures.peak("auth.session_routes_checked", len(records))
    tally.finish(figures, "auth.sessions")


# -- zip slip ----------------------------------------------------------------------------------------------


def test_uploads_cannot_write_outside_the_data_root(
    secured: Secured, figures: Figures, tmp_path: Path
) -> None:
    data_root = secured.data_root
    root = secured.service.root  # the data root's parent: registry, jobs, work
    outside = tmp_path / "outside"
    outside.mkdir()
    mark = secured.service.log.mark()
    # A valid upload works, so every refusal below is about the hostile member alone.
    created = upload(
        secured,
        build_archive("zip", dataset_files(), Hostile("none", "extra/ok.txt"), False),
        "ok.zip",
        "valid",
    )
    assert created.status_code in (200, 201), created.text  # 200: an earlier test sent the same archive
    baseline = sorted(p.name for p in data_root.iterdir())
    assert created.json()["id"] in baseline

    problems: list[str] = []
    refused = escaped = leftovers = archives = 0
    before_root = tree(root, skip=data_root)
    for i, hostile in enumerate(hostile_members(data_root, outside)):
        for fmt in hostile.formats[: cases(2, 3)]:
            for first in (False, True)[: cases(1, 2)]:
                archives += 1
                label = f"{hostile.label} ({fmt}, {'first' if first else 'last'})"
                archive = build_archive(fmt, dataset_files(seed=10 * (i + 1)), hostile, first)
                response = upload(secured, archive, f"hostile.{fmt}", label)
                expected = hostile.refusal.format(name=hostile.name)
                detail = (
                    response.json().get("detail")
                    if response.headers.get("content-type") == "application/json"
                    else None
                )
                if response.status_code != 400 or detail != expected:
                    problems.append(
                        f"{label}: {response.status_code} {response.text[:200]!r}, expected 400 {expected!r}"
                    )
                else:
                    refused += 1
                problem = error_body_problem(
                    response.status_code, response.headers.get("content-type"), response.content
                )
                if response.status_code >= 400 and problem is not None:
                    problems.append(f"{label}: {problem}")
                after_root = tree(root, skip=data_root)
                escapes = sorted(set(after_root) - set(before_root)) + [str(p) for p in outside.iterdir()]
                if escapes or after_root != before_root:
                    escaped += 1
                    problems.append(f"{label}: written outside the data root: {escapes[:5]}")
                    before_root = after_root
                visible = sorted(p.name for p in data_root.iterdir())
                if visible != baseline:
                    leftovers += 1
                    problems.append(f"{label}: the data root now holds {visible}")
                    baseline = visible
    # Links and climbs in labels.csv: a read outside the folder is refused by validation (422).
    for target in ["../../escape.png", "/etc/passwd", "frames/../../labels.csv"][: cases(2, 3)]:
        archives += 1
        files = dataset_files(seed=99)
        files["labels.csv"] += f"{target},1\n".encode()
        response = upload(
            secured, build_archive("zip", files, Hostile("none", "extra/ok.txt"), False), "climb.zip", target
        )
        payload = response.json()
        if response.status_code != 422 or "outside the data-set folder" not in payload.get("detail", ""):
            problems.append(f"labels.csv naming {target}: {response.status_code} {response.text[:200]!r}")
        elif unclear_reason(payload["detail"]) is not None:
            problems.append(f"labels.csv naming {target}: {unclear_reason(payload['detail'])}")
        else:
            refused += 1
    figures.count("zipslip.archives", archives)
    figures.count("zipslip.refused", refused)
    figures.count("zipslip.escaped_writes", escaped)
    figures.count("zipslip.leftover_folders", leftovers)
    figures.count("zipslip.wrong_answers", len(problems))
    assert not problems, f"{len(problems)} problems in {archives} hostile uploads:\n" + "\n".join(
        problems[:10]
    )
    logged = secured.service.log.since(mark)
    assert not logged, f"refusing archives logged errors: {logged[:3]}"


# -- production without a token ----------------------------------------------------------------------------


def test_no_secret_in_responses_or_logs(secured: Secured, figures: Figures) -> None:
    """Failing requests of every kind against the secured server, then every answer and log line of the
    module is searched for the token and the Redis password."""
    hex_id = "0123456789abcdef" * 2
    failing: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/jobs", {"headers": TOKEN}),
        ("GET", f"/jobs/{hex_id}", {"headers": TOKEN}),
        ("DELETE", f"/jobs/{hex_id}", {"headers": TOKEN}),
        ("GET", f"/jobs/{hex_id}/events", {"headers": TOKEN}),
        ("GET", "/jobs/not-an-id", {"headers": TOKEN}),
        (
            "POST",
            "/retrain",
            {"headers": TOKEN, "json": {"dataset": "ds-0123456789abcdef", "task": "classify"}},
        ),
        ("POST", "/retrain", {"headers": TOKEN, "json": {"dataset": "x", "task": "nope", "extra": 1}}),
        ("POST", "/retrain", {"headers": TOKEN, "json": {"task": "classify", "overrides": {"name": "x"}}}),
        ("POST", f"/models/{MODEL_NAME}/promote", {"headers": TOKEN, "json": {"ref": "999"}}),
        ("POST", f"/models/{MODEL_NAME}/rollback", {"headers": TOKEN, "json": {"alias": "nothing"}}),
        ("GET", "/models/no-such-model", {"headers": TOKEN}),
        ("POST", "/datasets", {"headers": TOKEN, "data": b"not multipart"}),
        (
            "POST",
            "/datasets",
            {"headers": TOKEN, "files": {"file": ("x.zip", b"PK\x03\x04broken", "application/zip")}},
        ),
        ("GET", "/datasets/ds-ffffffffffffffff", {"headers": TOKEN}),
        ("POST", "/assess", {"headers": TOKEN, "data": b"\x89PNG broken"}),
        ("POST", "/assess", {"headers": {**TOKEN, "Content-Type": "application/octet-stream"}, "data": b"x"}),
        ("GET", "/no/such/path", {"headers": TOKEN}),
        ("PUT", "/assess", {"headers": TOKEN}),
        ("GET", "/jobs", {"headers": {"Authorization": "Bearer usqa-sekret"}}),
        ("GET", "/jobs", {}),
        ("POST", "/assess", {"data": png_bytes(frame_of_level(90, (32, 32)))}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
    ]
    # The one call that reaches Redis with a job: a data set exists, the queue does not answer.
    dataset = upload(
        secured,
        build_archive("zip", dataset_files(seed=500), Hostile("none", "more/ok.txt"), False),
        "s.zip",
        "setup",
    )
    assert dataset.status_code in (200, 201), dataset.text
    failing.append(
        (
            "POST",
            "/retrain",
            {
                "headers": TOKEN,
                "json": {"dataset": dataset.json()["id"], "task": "classify", "config": "debug"},
            },
        )
    )
    # An alias move announces on Redis, which fails and is logged: the log line must not carry the URL.
    failing.append(("POST", f"/models/{MODEL_NAME}/promote", {"headers": TOKEN, "json": {"ref": "1"}}))
    statuses: dict[int, int] = {}
    for method, path, kwargs in failing:
        response = secured.call(method, path, "secrets", **kwargs)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(503, 0) >= 5, f"the job routes did not answer 503 without Redis: {statuses}"
    secured.listen()
    for label, headers in [("no token", None), ("query token", None), ("header token", TOKEN)]:
        query = f"?token={SECRET_TOKEN}" if label == "query token" else ""
        ws_answer(f"{secured.service.live.ws}{query}", headers)
    time.sleep(0.2)  # the closing sessions' last log lines

    leaks: list[str] = []
    answers = secured.transcript.answers
    for label, text in answers:
        for secret in SECRETS:
            if secret in text:
                leaks.append(
                    f"{label}: the answer holds {'the token' if secret == SECRET_TOKEN else 'the Redis password'}"
                )
    lines = secured.log.snapshot()
    for name, text in lines:
        for secret in SECRETS:
            if secret in text:
                leaks.append(f"log {name}: {text[:240]!r}")
    figures.count("secrets.responses_checked", len(answers))
    figures.count("secrets.log_lines_checked", len(lines))
    figures.count("secrets.leaks", len(leaks))
    assert any("redis://:***@127.0.0.1:1/0" in text for _, text in answers), (
        "the 503s no longer name the queue"
    )
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks[:10])
