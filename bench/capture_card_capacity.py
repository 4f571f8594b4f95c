"""The capture-card benchmark's last scenario (issue #27): a service's capacity of streams running, and more
trying to open beside them until one is refused."""

from __future__ import annotations

import asyncio

import httpx

from bench.latency_load import Result, _for, ws_streams

# Streams tried past the capacity read before the run: the service re-measures as they load it, and may admit some.
MAX_EXTRA_STREAMS = 4


async def refused_beside(
    url: str, name: str, payloads: list[bytes], streams: int, fps: float, duration: float
) -> tuple[Result, int | None, str, list[tuple[int, int]]]:
    """`streams` streams at `fps`, and half-way through one more at a time until one is refused: (the streams'
    result, the last one's close code and reason, and (streams reported, streams open) on /readyz before each try).
    The service's capacity is a live measure: one it admits keeps streaming to the end, and the next one is tried."""
    from usqa.client import AsyncClient, ScanRefused

    async def one_more(seconds: float) -> tuple[int | None, str]:
        async with AsyncClient(url, model=name, retries=0) as client:
            try:
                report = await client.play(payloads, fps=fps, until=_for(seconds))
            except ScanRefused as exc:  # closed before its ready message
                if exc.close_code is None:
                    raise
                return exc.close_code, exc.close_reason
        return report.close_code, report.close_reason

    async def extra() -> tuple[int | None, str, list[tuple[int, int]]]:
        await asyncio.sleep(duration / 2)
        tries: list[tuple[int, int]] = []
        admitted: list[asyncio.Task[tuple[int | None, str]]] = []
        code, reason = None, "no stream tried"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for index in range(MAX_EXTRA_STREAMS):
                capacity = (await http.get("/readyz")).json()["capacity"]
                tries.append((int(capacity["streams"] or 0), int(capacity["open_streams"])))
                attempt = asyncio.create_task(one_more(duration / 2 - index))
                done, _ = await asyncio.wait(
                    {attempt}, timeout=1.0
                )  # a refusal comes before the first result
                if not done:
                    admitted.append(attempt)
                    continue
                code, reason = attempt.result()
                break
        for task in admitted:
            await task
        return code, reason, tries

    running, (code, reason, tries) = await asyncio.gather(
        ws_streams(url, {name: payloads}, streams, fps, duration), extra()
    )
    return running, code, reason, tries
