"""Filing a finished scan: its DICOM objects, made from the session and the model that scored it."""

from __future__ import annotations

import logging
from pathlib import Path

from usqa.service.inference.model import LoadedModel
from usqa.service.live.session_store import SessionRecord
from usqa.service.record.dicom_objects import encode, scan_objects
from usqa.service.record.document import scan_document
from usqa.service.record.outbox import Outbox
from usqa.service.registry.pass_line import pass_line

log = logging.getLogger(__name__)


def scan_files(record: SessionRecord, model: LoadedModel) -> list[bytes]:
    """The scan's objects as Part 10 files, captures first, the SR last (reads PNGs: run in a thread)."""
    document = scan_document(
        record, model_name=model.name, task=model.task, promise=pass_line(model.manifest).promise
    )
    return [encode(dataset) for dataset in scan_objects(document)]


def file_scan(outbox: Outbox, record: SessionRecord, model: LoadedModel) -> Path | None:
    """Put a finished scan's objects in the outbox; None when there is nothing to file (no frame scored, or
    the session was deleted meanwhile)."""
    if record.removed or record.stats.scored == 0:
        return None
    parcel = outbox.put(record.session_id, scan_files(record, model))
    if record.removed:  # deleted while its objects were being written
        outbox.discard(record.session_id)
        return None
    log.info("scan session %s filed for the PACS as %s", record.session_id, parcel.name)
    return parcel
