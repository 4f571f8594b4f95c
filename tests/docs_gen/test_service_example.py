"""docs/service.md's generated examples are the shipped model's answers (timings and session ids aside)."""

from __future__ import annotations

import json
from typing import Any

from docs_gen.blocks import block_body
from docs_gen.service_example import DOC, TIMING_KEYS, exchanges


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS | {"session"}}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_the_docs_examples_are_what_the_shipped_model_answers() -> None:
    text = DOC.read_text()
    blocks = {name: block_body(text, name) for name in ("assess", "scan")}
    decoder = json.JSONDecoder()
    documented: dict[str, Any] = {
        "assess": json.loads(blocks["assess"].strip().strip("`").removeprefix("json"))
    }
    stream = blocks["scan"].strip().strip("`").removeprefix("json").strip()
    documented["ready"], end = decoder.raw_decode(stream)
    documented["result"], _ = decoder.raw_decode(stream[end:].strip())
    assert _without_timings(documented) == _without_timings(exchanges()), (
        "docs/service.md is stale: run `python -m docs_gen.service_example`"
    )
