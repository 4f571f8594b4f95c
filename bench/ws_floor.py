"""The transport floor of /ws/scan (bench/capture_card.py): uvicorn, as `usqa serve` runs it, answering every frame
with a result-sized JSON message and doing nothing else; no decoding, no model, no bookkeeping.

Its CPU per frame is what any Python ASGI service pays on this machine before it does any work: the WebSocket
framing, the socket calls, the event loop. The same `usqa.client` streams drive it, so it speaks just enough of
the protocol for them: `ready` on connect, a `result` per binary message, a `summary` and a close on `end`.

    python -m bench.ws_floor --port 8765
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from usqa.contracts.protocol import MessageType, Reason, Verdict

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

READY = json.dumps({"type": MessageType.READY, "session": "floor", "model": {"name": "floor", "version": 0}})
# As large as the service's result for a classifier (the fields it has, values of their lengths).
RESULT: dict[str, Any] = {
    "type": MessageType.RESULT,
    "verdict": Verdict.GOOD,
    "reason": Reason.AMENABLE,
    "score": 0.734512,
    "display_score": 0.612345,
    "display_threshold": 0.5,
    "smoothed_score": 0.701234,
    "p_amenable": 0.912345,
    "ood_distance": 1.234567,
    "amenable": True,
    "threshold": 0.412345678,
    "guidance": Verdict.GOOD,
    "guidance_changed": False,
    "prediction": {"task": "classify", "label": "gland", "probability": 0.91, "probabilities": [0.09, 0.91]},
    "latency_ms": {"decode": 0.123, "queue": 0.012, "inference": 0.234, "total": 0.512},
    "dropped": 0,
    "model": {"name": "floor", "version": 0},
    "captured": None,
    "looks_like": None,
}


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":  # the readiness check of `usqa.local_stack.start_server`
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await stream(receive, send)


async def stream(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": READY})
    seq = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "text": json.dumps(RESULT | {"seq": seq})})
            seq += 1
        elif json.loads(message.get("text") or "{}").get("type") == MessageType.END:
            summary = {"type": MessageType.SUMMARY, "frames": {"received": seq, "scored": seq, "dropped": 0}}
            await send({"type": "websocket.send", "text": json.dumps(summary)})
            await send({"type": "websocket.close", "code": 1000})
            return


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # The settings `usqa serve` runs uvicorn with (usqa/service/api/cli.py): no per-message deflate.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws_per_message_deflate=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
