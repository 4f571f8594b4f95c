from __future__ import annotations

import json
import os
import time
from pathlib import Path

from usqa.service.live.captures import FrameBytes
from usqa.service.live.session_store import MAX_VERDICT_GAP_S, SessionRecord, SessionStore, summary_text
from usqa.service.live.sessions import ScanSessionStats

from ..conftest import frame_of_level, png_bytes
from .conftest import stream_result

FRAME = png_bytes(frame_of_level(120, (32, 32)))


def finished_record(store: SessionStore, captures: int = 2) -> SessionRecord:
    record = SessionRecord(
        ScanSessionStats(reference=None), captures=captures, spacing_s=1.0, max_pixels=10**6
    )
    store.open(record)
    for seq in range(captures):
        record.on_result(stream_result(seq, 0.9), seq * 2.0, FrameBytes(FRAME))
    store.finish(record)
    return record


def test_memory_stays_bounded_under_100_sessions() -> None:
    store = SessionStore(max_sessions=10, max_bytes=10**9)
    records = [finished_record(store) for _ in range(100)]
    assert len(store) == 10
    assert [r.session_id for r in store.recent()] == [r.session_id for r in reversed(records[-10:])]
    assert store.get(records[0].session_id) is None
    assert sum(r.nbytes for r in store.recent()) <= 10 * 2 * len(FRAME)


def test_capture_bytes_bound_the_store_too() -> None:
    store = SessionStore(max_sessions=100, max_bytes=5 * 2 * len(FRAME))
    for _ in range(100):
        finished_record(store)
    assert len(store) == 5 and sum(r.nbytes for r in store.recent()) <= store.max_bytes


def test_open_sessions_are_never_evicted_and_reading_keeps_a_session() -> None:
    store = SessionStore(max_sessions=2, max_bytes=10**9)
    live = SessionRecord(ScanSessionStats(reference=None), captures=1, spacing_s=1.0, max_pixels=1)
    store.open(live)
    first = finished_record(store)
    finished_record(store)
    assert store.get(first.session_id) is first  # read: now the most recently used
    finished_record(store)
    assert store.get(live.session_id) is live and store.get(first.session_id) is first
    assert len(store) == 3


def test_time_in_each_verdict_skips_pauses() -> None:
    record = SessionRecord(ScanSessionStats(reference=None), captures=0, spacing_s=1.0, max_pixels=1)
    frame = FrameBytes(FRAME)
    for seq, (t, verdict) in enumerate([(0.0, "good"), (1.0, "good"), (1.5, "adjust"), (30.0, "good")]):
        record.on_result(stream_result(seq, 0.5, verdict), t, frame)
    assert record.verdict_seconds["good"] == 1.5
    assert record.verdict_seconds["adjust"] == MAX_VERDICT_GAP_S


def test_the_archive_is_written_whole(tmp_path: Path) -> None:
    store = SessionStore(max_sessions=4, max_bytes=10**9, folder=tmp_path / "sessions")
    record = finished_record(store)
    folder = store.archive(record)
    assert folder == tmp_path / "sessions" / record.session_id
    assert sorted(p.name for p in folder.iterdir()) == ["capture-0.png", "capture-1.png", "report.json"]
    assert json.loads((folder / "report.json").read_text())["session"] == record.session_id
    assert (folder / "capture-0.png").read_bytes() == FRAME
    assert [p.name for p in folder.parent.iterdir()] == [record.session_id]  # no staging folder left


def test_delete_forgets_a_session_and_removes_its_folder(tmp_path: Path) -> None:
    store = SessionStore(max_sessions=4, max_bytes=10**9, folder=tmp_path)
    kept, gone = finished_record(store), finished_record(store)
    for record in (kept, gone):
        store.archive(record)
    assert store.delete(gone.session_id) is True
    assert store.get(gone.session_id) is None and not (tmp_path / gone.session_id).exists()
    assert store.get(kept.session_id) is kept and (tmp_path / kept.session_id).is_dir()
    assert store.delete(gone.session_id) is False and store.delete("nope") is False
    assert store.delete("..") is False and tmp_path.is_dir()  # only a session id names a folder
    # Evicted from memory but still archived: the folder alone is deleted.
    store.max_sessions = 0
    store.evict()
    assert store.get(kept.session_id) is None and store.delete(kept.session_id) is True
    assert list(tmp_path.iterdir()) == []


def test_a_session_deleted_while_it_streams_or_archives_is_never_kept(tmp_path: Path) -> None:
    store = SessionStore(max_sessions=4, max_bytes=10**9, folder=tmp_path)
    live = SessionRecord(ScanSessionStats(reference=None), captures=1, spacing_s=1.0, max_pixels=10**6)
    store.open(live)
    assert store.delete(live.session_id) is True
    store.finish(live)  # the stream ends after the deletion
    assert store.get(live.session_id) is None and store.archive(live) is None
    assert list(tmp_path.iterdir()) == []


def test_finished_sessions_expire_from_memory_and_disk(tmp_path: Path) -> None:
    store = SessionStore(max_sessions=10, max_bytes=10**9, folder=tmp_path, retention_s=0.3)
    live = SessionRecord(ScanSessionStats(reference=None), captures=1, spacing_s=1.0, max_pixels=1)
    store.open(live)
    old = finished_record(store)
    store.archive(old)
    # A folder an earlier process left behind, and a staging folder of a crashed archive.
    for name in ("0123456789ab", ".0123456789ab.x1"):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (time.time() - 3600, time.time() - 3600))
    time.sleep(0.35)
    fresh = finished_record(store)  # a new session sweeps memory and disk
    assert store.get(old.session_id) is None and store.get(fresh.session_id) is fresh
    assert store.get(live.session_id) is live  # open streams never expire
    assert list(tmp_path.iterdir()) == []
    assert store.expire(now=time.time() + 1) == [fresh.session_id] and len(store) == 1


def test_summary_text_is_in_words() -> None:
    frames = {"received": 10, "scored": 10, "dropped": 0, "failed": 0}
    seconds = {"good": 72.0, "adjust": 20.0, "no_signal": 8.0, "out_of_scope": 0.0}
    captures = [{"time_s": 41.2, "score": 0.912}]
    text = summary_text(100.0, seconds, captures, frames)
    assert (
        text
        == "Scan of 1:40: usable 72 % of the time (adjust 20 %, no signal 8 %). Best frames: at 0:41 (score 0.91)."
    )
    assert "no frame could be assessed" in summary_text(3.0, seconds, [], {**frames, "scored": 0})
