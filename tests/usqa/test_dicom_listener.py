"""The DICOM listener's bounds (usqa/client/dicom_listener.py): an association past its instance budget gets
"out of resources", and a series usqa cannot decode is reported with the reason, never streamed."""

from __future__ import annotations

import time

from pynetdicom import AE

from usqa.client.dicom_listener import (
    OUT_OF_RESOURCES,
    DicomListener,
    ListenerLimits,
    SeriesOutcome,
    frame_rate,
)

from ..support.cines import US_MULTIFRAME, cine_frames, us_cine
from ..support.orthanc import free_port


def push(port: int, *datasets: object) -> list[int]:
    scu = AE(ae_title="SCANNER")
    scu.add_requested_context(US_MULTIFRAME)
    association = scu.associate("127.0.0.1", port, ae_title="USQA")
    assert association.is_established
    statuses = [int(association.send_c_store(d).Status) for d in datasets]
    association.release()
    return statuses


def wait(outcomes: list[SeriesOutcome], count: int) -> None:
    deadline = time.monotonic() + 20
    while len(outcomes) < count:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_past_its_budget_an_association_is_told_out_of_resources_and_bad_pixels_are_reported() -> None:
    outcomes: list[SeriesOutcome] = []
    nowhere = f"ws://127.0.0.1:{free_port()}/ws/scan"
    listener = DicomListener(
        nowhere, host="127.0.0.1", port=0, limits=ListenerLimits(max_instances=1), on_series=outcomes.append
    ).start()
    try:
        broken = us_cine(cine_frames(3, seed=1))
        broken.PixelData = broken.PixelData[:10]  # the header promises three frames
        other = us_cine(cine_frames(2, seed=2))
        assert push(listener.port, broken, other) == [0x0000, OUT_OF_RESOURCES]
        wait(outcomes, 1)
    finally:
        listener.stop()
    (outcome,) = outcomes
    assert (
        outcome.report is None and outcome.error and outcome.series_instance_uid == broken.SeriesInstanceUID
    )


def test_a_series_the_service_cannot_take_is_reported_not_raised() -> None:
    outcomes: list[SeriesOutcome] = []
    nowhere = f"ws://127.0.0.1:{free_port()}/ws/scan"
    listener = DicomListener(nowhere, host="127.0.0.1", port=0, on_series=outcomes.append).start()
    try:
        assert push(listener.port, us_cine(cine_frames(2, seed=3))) == [0x0000]
        wait(outcomes, 1)
    finally:
        listener.stop()
    assert outcomes[0].frames == 2 and "streaming to" in (outcomes[0].error or "")


def test_the_cine_plays_at_its_own_rate() -> None:
    cine = us_cine(cine_frames(2, seed=4), fps=25.0)
    assert frame_rate(cine) == 25.0
    del cine.FrameTime
    assert frame_rate(cine) == 30.0
    cine.CineRate = 12
    assert frame_rate(cine) == 12.0
