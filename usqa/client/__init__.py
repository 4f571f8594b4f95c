"""The usqa Python client: the one way anything outside the service talks to it, over HTTP and /ws/scan.

    from usqa.client import Client

    with Client("http://scanner-box:8000", token="...") as usqa:
        print(usqa.assess("frame.png").frames[0].verdict)
        scan = usqa.scan(frames)                    # numpy arrays, encoded bytes or image paths
        for verdict in scan:                        # one per frame; a refused frame's has .error set
            print(verdict.seq, verdict.error or verdict.verdict, verdict.score)
        print(scan.session, scan.summary)           # known once the stream opened / ended
        dataset = usqa.upload(Path("site-b.zip"))   # POST /datasets
        job = usqa.retrain({"dataset": dataset.id, "task": "classify"})
        for status in usqa.follow_job(job.id):      # GET /jobs/{id}/events
            print(status.state, status.progress.get("episode"))

`AsyncClient` has the same methods as coroutines (`scan`, `job_events` and `follow_job` iterate async). Both
are thin drivers of one core (`usqa.client.core`: the requests, the retry policy, the scan's pacing and the
answers' parsing). Requests are retried with exponential backoff on connection errors, 429 and 503
(honouring Retry-After); a stream is opened again when the server answers "try again later" (close 1013).
`scan` is paced by the server's answers (the next frame goes when the last is answered; `window=2` sends one
ahead; `usqa.client.pacing`); `play` keeps a scanner's fixed frame rate and measures each round trip
(`usqa.client.stream`, what `usqa stream` and the benchmarks use).
"""

from __future__ import annotations

from usqa.client.aio import AsyncClient, AsyncScanRun
from usqa.client.core import Assessment, Dataset, Frame, Job, JobEvent, ScanRefused, UsqaError, Verdict
from usqa.client.stream import StreamReport
from usqa.client.sync import Client, ScanRun

__all__ = [
    "Assessment",
    "AsyncClient",
    "AsyncScanRun",
    "Client",
    "Dataset",
    "Frame",
    "Job",
    "JobEvent",
    "ScanRefused",
    "ScanRun",
    "StreamReport",
    "UsqaError",
    "Verdict",
]
