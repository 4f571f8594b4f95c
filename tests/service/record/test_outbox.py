"""The PACS outbox against a real Orthanc: parcels delivered oldest first and removed, retried with backoff while
the PACS is away, set aside with the reason when the PACS refuses them, discarded on deletion; and a parcel
is whole or absent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from usqa.service.record.dicom_objects import encode, scan_objects
from usqa.service.record.outbox import REASON_FILE, REFUSED_DIR, STAGING_PREFIX, Outbox, OutboxSender
from usqa.service.record.stow import StowClient, StowError, multipart_body

from ...support.orthanc import OrthancServer, free_port
from .test_dicom_objects import document


def parcel_of(session: str) -> list[bytes]:
    return [encode(d) for d in scan_objects(document(2, session=session))]


def sender(outbox: Outbox, url: str, **counters: Any) -> OutboxSender:
    return OutboxSender(outbox, StowClient(url, timeout_s=5.0), retry_min_s=0.05, retry_max_s=0.2, **counters)


def test_parcels_are_whole_oldest_first_and_discarded_by_session(tmp_path: Path) -> None:
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / f"{STAGING_PREFIX}dead").mkdir()  # a write an earlier process never finished
    outbox = Outbox(tmp_path / "outbox")
    assert not list((tmp_path / "outbox").glob(f"{STAGING_PREFIX}*"))
    first = outbox.put("aaaaaaaaaaaa", [b"1", b"2"])
    second = outbox.put("bbbbbbbbbbbb", [b"3"])
    assert outbox.parcels() == [first, second] and outbox.read(first) == [b"1", b"2"]
    assert outbox.discard("aaaaaaaaaaaa") == 1 and outbox.parcels() == [second]
    with pytest.raises(ValueError):
        outbox.put("../escape", [b"x"])


def test_a_parcel_is_delivered_once_and_leaves_the_outbox(tmp_path: Path, pacs: OrthancServer) -> None:
    outbox = Outbox(tmp_path / "outbox")
    delivered: list[int] = []
    outbox.put("aaaaaaaaaaaa", parcel_of("aaaaaaaaaaaa"))
    outbox.put("bbbbbbbbbbbb", parcel_of("bbbbbbbbbbbb"))

    async def run() -> OutboxSender:
        s = sender(outbox, pacs.dicomweb, on_delivered=delivered.append)
        for parcel in outbox.parcels():
            assert await s.deliver(parcel)
        await s.client.aclose()
        return s

    s = asyncio.run(run())
    assert delivered == [3, 3] and s.status.delivered == 2 and outbox.count() == 0
    assert len(pacs.instance_ids()) == 6


def test_an_unreachable_pacs_keeps_the_parcel_backs_off_and_says_degraded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    parcel = outbox.put("aaaaaaaaaaaa", parcel_of("aaaaaaaaaaaa"))
    failures: list[str] = []

    async def run() -> OutboxSender:
        s = sender(outbox, f"http://127.0.0.1:{free_port()}/dicom-web", on_failure=failures.append)
        waits = []
        for _ in range(4):
            assert not await s.deliver(parcel)
            waits.append(s.backoff_s())
        await s.client.aclose()
        assert waits == [0.05, 0.1, 0.2, 0.2]
        return s

    s = asyncio.run(run())
    assert (
        failures == ["retry"] * 4
        and s.status.state == "degraded"
        and "unreachable" in (s.status.last_error or "")
    )
    assert outbox.parcels() == [parcel]


def test_a_parcel_the_pacs_refuses_is_set_aside_with_the_reason(tmp_path: Path, pacs: OrthancServer) -> None:
    outbox = Outbox(tmp_path / "outbox")
    outbox.put("aaaaaaaaaaaa", [b"not a DICOM file"])

    async def run() -> OutboxSender:
        s = sender(outbox, pacs.dicomweb)
        assert await s.deliver(outbox.parcels()[0])
        await s.client.aclose()
        return s

    s = asyncio.run(run())
    refused = list((tmp_path / "outbox" / REFUSED_DIR).iterdir())
    assert s.status.refused == 1 and s.status.state == "ok" and outbox.count() == 0
    assert len(refused) == 1 and "400" in (refused[0] / REASON_FILE).read_text()


def test_a_wrong_url_is_retried_not_refused(tmp_path: Path, pacs: OrthancServer) -> None:
    """A 404 says the URL is wrong, not the objects: they wait for the operator's fix."""

    async def run() -> StowError:
        client = StowClient(f"{pacs.rest}/no-dicomweb-here", timeout_s=5.0)
        with pytest.raises(StowError) as caught:
            await client.store(parcel_of("aaaaaaaaaaaa"))
        await client.aclose()
        return caught.value

    error = asyncio.run(run())
    assert error.retry and "404" in str(error)


def test_credentials_in_the_url_become_basic_auth_and_never_show() -> None:
    client = StowClient("http://user:secret@pacs.example:8042/dicom-web/", timeout_s=1.0)
    assert client.url == "http://pacs.example:8042/dicom-web/studies"
    body, content_type = multipart_body([b"abc"])
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\nabc\r\n".encode())
    assert body.endswith(f"--{boundary}--\r\n".encode())
    asyncio.run(client.aclose())
