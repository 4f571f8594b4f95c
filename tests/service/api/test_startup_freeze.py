"""The objects of startup are frozen out of the cyclic collector's full passes while the service runs
(usqa.service.heap): a full pass over them paused the process tens of ms, past a frame's budget."""

from __future__ import annotations

import gc
from pathlib import Path

from usqa.service.api import create_app
from usqa.service.heap import freeze_startup_objects, thaw_startup_objects

from ..conftest import FIXTURE_MODEL_NAME, make_settings, serve


def test_a_full_collection_skips_what_startup_froze() -> None:
    alive = [{"frame": i} for i in range(200_000)]
    gc.collect()
    collected_before = len(gc.get_objects())  # what a full pass visits
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(alive)
        assert len(gc.get_objects()) <= collected_before - len(alive)
    finally:
        thaw_startup_objects()
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects()) >= len(alive)


def test_the_service_freezes_its_startup_and_thaws_it_when_it_stops(source_registry: Path) -> None:
    settings = make_settings(source_registry, model_name=FIXTURE_MODEL_NAME)
    with serve(create_app(settings)):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
