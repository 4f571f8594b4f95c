"""Malformed input, WebSocket /ws/scan: wrong hellos, text where frames belong, garbage JSON, wrong sizes,
oversized messages, floods, protocol garbage and abrupt disconnects.

Each case is one stream. The protocol (docs/service.md, usqa/service/api/scan_messages.py) says what the server
answers: a text message gets `configured` or one `error` (seq null), a frame gets one `result` or one
`error` (its seq), a message over the limit gets an `error`, the summary and close 1009, `end` gets the
summary and close 1000. Every message must match its schema and every error message must be clear; the
server must not log an error or a traceback; and after each bad stream a good one must still work.

The harness (streams, tallies, the raw socket) is tests/support/websocket.py; abrupt disconnects and protocol
garbage below the JSON layer are in test_malformed_websocket_protocol.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import cv2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.websocket import (
    DEADLINE_S,
    GOOD_FRAME,
    RECV_TIMEOUT_S,
    ProtocolViolation,
    WsTally,
    after_bad_stream,
    close_of,
    expect,
    receive,
    reply_to_text,
    stream,
)
from usqa.contracts.protocol import CloseCode
from usqa.service.api.scan_messages import (
    MSG_BAD_JSON,
    MSG_TOO_BIG_REASON,
    MSG_UNKNOWN_TYPE,
    ScanHello,
    ShownType,
)
from usqa.service.settings import Settings

from ..service.conftest import frame_of_level
from .conftest import WS_MESSAGE_LIMIT, Figures, ServiceUnderTest, cases, fuzz, unclear_reason

SECTION = "malformed_input"

FLOOD_FRAMES = 300
MAX_PIXELS = int(Settings.model_fields["max_frame_pixels"].default)


# -- strategies ------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
HELLO_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 65535, 100_000, 2**31, 2**63]),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["raw", "encoded", "RAW", "png", ""]),
    st.lists(st.integers(), max_size=2),
)
NASTY_TEXTS = [
    "",
    " ",
    "null",
    "[]",
    '"hello"',
    "{}",
    '{"type": null}',
    '{"type": ["hello"]}',
    '{"type": {"type": "end"}}',
    '{"type": "HELLO"}',
    '{"type": "hello", "type": "dance"}',
    '{"type": "hello", "format": "raw", "width": 1e999, "height": 2}',
    '{"type": NaN}',
    "\ufeff{}",
    "[" * 100_000 + "]" * 100_000,
    '{"type": ' + "[" * 5_000 + "]" * 5_000 + "}",
    '{"type": "hello", "format": "raw", "width": ' + "9" * 5_000 + ', "height": 1}',
    '{"type": "' + "x" * 100_000 + '"}',
]


@st.composite
def hellos(draw: st.DrawFn) -> str:
    """Hello messages with any format, width and height, or extra fields."""
    hello: dict[str, Any] = {"type": "hello"}
    for key in draw(st.lists(st.sampled_from(["format", "width", "height", "extra"]), unique=True)):
        hello[key] = draw(HELLO_VALUES)
    return json.dumps(hello)


@st.composite
def raw_frames(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A raw hello's size and the byte lengths of the frames that follow (mostly the wrong ones)."""
    width = draw(st.one_of(st.integers(1, 96), st.sampled_from([100_000, 70_000])))
    height = draw(st.one_of(st.integers(1, 96), st.sampled_from([100_000, 65_536])))
    lengths = draw(
        st.lists(
            st.one_of(st.integers(1, 20_000), st.just(width * height), st.just(width * height + 1)),
            min_size=1,
            max_size=3,
        )
    )
    return width, height, [min(length, WS_MESSAGE_LIMIT) for length in lengths]


def replies_after(hello: str) -> Callable[[bytes], set[str]]:
    """What a good PNG frame gets after `hello`: a result, unless a valid raw hello made it raw bytes."""
    if reply_to_text(hello) == "configured":
        config = ScanHello.model_validate(json.loads(hello))
        if config.format == "raw" and config.width is not None and config.height is not None:
            return raw_replies(config.width, config.height)
    return lambda frame: {"result"}


def raw_replies(width: int, height: int) -> Callable[[bytes], set[str]]:
    def replies(frame: bytes) -> set[str]:
        if width * height > MAX_PIXELS:
            return {"frame_too_large"}
        return {"result"} if len(frame) == width * height else {"raw_size_mismatch"}

    return replies


# -- the cases -------------------------------------------------------------------------------------------


def test_text_and_garbage_json_get_an_error_each(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("text")

    @fuzz(cases(6, 200), DEADLINE_S)
    @given(
        texts=st.lists(
            st.one_of(st.text(max_size=60), JSON_VALUES.map(json.dumps), hellos()), min_size=1, max_size=4
        )
    )
    @example(texts=NASTY_TEXTS[:8])
    @example(texts=NASTY_TEXTS[8:])
    def case(texts: list[str]) -> None:
        stream(service, tally, f"texts {[t[:40] for t in texts]}", list(texts))

    case()
    tally.finish(figures)


def test_wrong_hellos_are_refused_and_the_stream_goes_on(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("hello")

    @fuzz(cases(6, 200), DEADLINE_S)
    @given(hello=hellos())
    @example(hello=json.dumps({"type": "hello", "format": "raw"}))
    @example(hello=json.dumps({"type": "hello", "format": "raw", "width": -1, "height": 10}))
    @example(hello=json.dumps({"type": "hello", "format": "raw", "width": 7, "height": 3, "extra": [1]}))
    def case(hello: str) -> None:
        stream(service, tally, f"hello {hello[:80]}", [hello, GOOD_FRAME], replies_after(hello))

    case()
    tally.finish(figures)


def test_raw_frames_of_the_wrong_size(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("raw_sizes")

    @fuzz(cases(5, 150), DEADLINE_S)
    @given(plan=raw_frames(), seed=st.integers(0, 255))
    @example(plan=(100_000, 100_000, [1000]), seed=0)
    def case(plan: tuple[int, int, list[int]], seed: int) -> None:
        width, height, lengths = plan
        hello = json.dumps({"type": "hello", "format": "raw", "width": width, "height": height})
        frames: list[str | bytes] = [bytes([seed]) * length for length in lengths]
        stream(
            service,
            tally,
            f"raw {width}x{height} frames of {lengths} bytes",
            [hello, *frames],
            raw_replies(width, height),
        )

    case()
    tally.finish(figures)


def test_frames_that_are_not_images(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("bad_frames")
    seed = bytearray(GOOD_FRAME)

    @fuzz(cases(6, 200), DEADLINE_S)
    @given(
        frames=st.lists(
            st.one_of(
                st.binary(min_size=1, max_size=4096),
                st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 7)).map(
                    lambda at: (
                        bytes(seed[: at[0]]) + bytes([seed[at[0]] ^ (1 << at[1])]) + bytes(seed[at[0] + 1 :])
                    )
                ),
                st.integers(1, len(seed) - 1).map(lambda cut: bytes(seed[:cut])),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def case(frames: list[bytes]) -> None:
        stream(service, tally, f"frames of {[len(f) for f in frames]} bytes", list(frames))

    case()
    tally.finish(figures)


def test_messages_over_the_limit_close_with_1009(service: ServiceUnderTest, figures: Figures) -> None:
    tally = WsTally("oversized")

    @fuzz(cases(2, 20), DEADLINE_S)
    @given(extra=st.integers(1, 64 * 1024), text=st.booleans())
    def case(extra: int, text: bool) -> None:
        tally.cases += 1
        tally.messages += 1
        label = f"a {'text' if text else 'binary'} message {extra} bytes over the limit"
        mark = service.log.mark()
        try:
            with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
                expect(ws, tally, label, "ready")
                size = WS_MESSAGE_LIMIT + extra
                ws.send("x" * size if text else bytes(size))
                error = expect(ws, tally, label, "error")
                if error["code"] != "message_too_big":
                    raise ProtocolViolation(f"expected message_too_big, got {error}")
                expect(ws, tally, label, "summary")
                closed = close_of(ws)
                if closed != (CloseCode.TOO_BIG, MSG_TOO_BIG_REASON):
                    raise ProtocolViolation(f"closed with {closed}, not {CloseCode.TOO_BIG}")
        except ProtocolViolation as exc:
            tally.violations.append(f"{label}: {exc}")
        except (ConnectionClosed, OSError) as exc:
            tally.crashes.append(f"{label}: the connection broke: {exc}")
        after_bad_stream(service, tally, label, mark)

    case()
    tally.finish(figures)


def test_a_flood_of_frames_is_absorbed(service: ServiceUnderTest, figures: Figures) -> None:
    """FLOOD_FRAMES frames as fast as the socket takes them: newest frame wins, every frame accounted for."""
    tally = WsTally("flood")
    variants = [
        cv2.imencode(".png", frame_of_level(40 + 10 * i, (96, 128), seed=i))[1].tobytes() for i in range(5)
    ]
    for round_ in range(cases(1, 3)):
        label = f"flood {round_}"
        tally.cases += 1
        mark = service.log.mark()
        started = time.perf_counter()
        try:
            with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S, close_timeout=2) as ws:
                expect(ws, tally, label, "ready")
                for i in range(FLOOD_FRAMES):
                    ws.send(variants[i % len(variants)])
                tally.messages += FLOOD_FRAMES
                ws.send(json.dumps({"type": "end"}))
                results = 0
                while (message := receive(ws, tally, label))["type"] != "summary":
                    if message["type"] != "result":
                        raise ProtocolViolation(f"a good frame in a flood got {message}")
                    results += 1
                counts = message["frames"]
                if counts["received"] != FLOOD_FRAMES or counts["scored"] != results:
                    raise ProtocolViolation(f"frames unaccounted for: {counts}, {results} results")
                if counts["scored"] + counts["dropped"] + counts["failed"] != FLOOD_FRAMES:
                    raise ProtocolViolation(f"frames unaccounted for: {counts}")
                if close_of(ws)[0] != CloseCode.NORMAL:
                    raise ProtocolViolation("no close 1000 after the flood")
            figures.peak("ws.flood_seconds", round(time.perf_counter() - started, 2))
            figures.peak("ws.flood_drop_rate", message["drop_rate"])
        except ProtocolViolation as exc:
            tally.violations.append(f"{label}: {exc}")
        except (ConnectionClosed, OSError) as exc:
            tally.crashes.append(f"{label}: the connection broke: {exc}")
        after_bad_stream(service, tally, label, mark)
    tally.finish(figures)


# -- regressions: what the fuzzing found, pinned ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # json.loads raised RecursionError out of the receive loop
        '{"type": "hello", "format": "raw", "width": ' + "9" * 5_000 + ', "height": 1}',  # ValueError
    ],
    ids=["deeply-nested", "too-many-digits"],
)
def test_json_that_python_cannot_load_is_a_bad_message(service: ServiceUnderTest, text: str) -> None:
    """Regression: these escaped `_on_text`, ended the stream with 1011 and logged a traceback."""
    mark = service.log.mark()
    with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S) as ws:
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "ready"
        ws.send(text)
        error = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))
        assert (error["type"], error["code"], error["message"]) == ("error", "bad_message", MSG_BAD_JSON)
        ws.send(GOOD_FRAME)
        assert json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["type"] == "result"
    assert service.log.since(mark) == []


def test_an_unknown_type_is_echoed_cut_short(service: ServiceUnderTest) -> None:
    """Regression: a 100 kB `type` came back whole in the error message."""
    with connect(service.live.ws, open_timeout=RECV_TIMEOUT_S) as ws:
        ws.recv(timeout=RECV_TIMEOUT_S)
        ws.send(json.dumps({"type": "x" * 100_000}))
        long = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["message"]
        ws.send(json.dumps({"type": [[[["deep"]]]]}))
        nested = json.loads(ws.recv(timeout=RECV_TIMEOUT_S))["message"]
    assert len(long) < 120 and long.startswith("unknown message type 'xxx")
    assert unclear_reason(long) is None and unclear_reason(nested) is None
    assert nested == MSG_UNKNOWN_TYPE.format(type=ShownType([[[["deep"]]]]))
