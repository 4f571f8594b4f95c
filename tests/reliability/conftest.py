"""The reliability suite's framework: the fast/full switch, figures, the "clear message" rule, servers.

`make test` runs this folder in its fast form (small case counts, figures written to a temporary folder);
`make reliability` sets `USQA_RELIABILITY=full`, which raises the counts and writes the figures to
`runs/reliability/<section>.json`, from which `python -m docs_gen.reliability_report` writes docs/reliability.md.
So the committed page never comes from a fast run.

Each test module names its section (`SECTION = "malformed_input"`, one of `docs_gen.reliability_targets.SECTIONS`) and
takes the `figures` fixture: `figures.count(name, n)` adds up, `figures.peak(name, value)` keeps the
largest, `figures.note(text)` states a known gap and its cause. After the test its figures are merged into
its section's file under the test's id (atomically), with its outcome and duration; the report adds them
up across tests and compares them with its `TARGETS`.

Test modules are imported in importlib mode and cannot import a helper beside them: what they share is
here, and they import it as `from .conftest import ...`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pytest
from hypothesis import HealthCheck, Phase, settings

from docs_gen.reliability_targets import SECTIONS as REPORT_SECTIONS

from ..service.conftest import LiveServer, build_fixture_registry, make_settings, serve

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
MODE_VARIABLE: Final = "USQA_RELIABILITY"
MODE: Final[Literal["fast", "full"]] = (
    "full" if os.environ.get(MODE_VARIABLE, "").strip().lower() == "full" else "fast"
)
FULL: Final = MODE == "full"
FIGURES_DIR: Final = REPO_ROOT / "runs" / "reliability"
FULL_COMMAND: Final = f"{MODE_VARIABLE}=full python -m pytest tests/reliability -p no:cacheprovider"
SECTIONS: Final = tuple(section.key for section in REPORT_SECTIONS)

API_TOKEN: Final = "reliability-suite-token"
AUTH: Final = {"Authorization": f"Bearer {API_TOKEN}"}
# Streams refuse messages over this size (the production default is 8 MiB; small keeps floods cheap).
WS_MESSAGE_LIMIT: Final = 256 * 1024

Aggregate = Literal["sum", "max"]


def cases(fast: int, full: int) -> int:
    """A case count for this run: `fast` inside `make test`, `full` under `make reliability`."""
    return full if FULL else fast


def fuzz(max_examples: int, deadline_s: float = 20.0) -> Callable[[Any], Any]:
    """Hypothesis settings of the suite: a fixed case count, the same cases every run, no database.

    The deadline only stops a hang; a test that wants every case counted catches failures itself
    instead of letting hypothesis shrink them, so only explicit examples and generation run.
    """
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=datetime.timedelta(seconds=deadline_s),
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


# -- figures ---------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """What the figures were measured on: the report prints it beside the date."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": usable,
        "cpu": model or platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write beside the target, then rename over it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(payload, file, indent=2, sort_keys=True)
            file.write("\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass
class FigureBook:
    """Where figures go: one JSON file per section, one entry per test, merged as tests finish."""

    directory: Path
    mode: str
    started: str = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat())

    def merge(self, section: str, test_id: str, entry: dict[str, Any]) -> Path:
        if section not in SECTIONS:
            raise ValueError(f"unknown reliability section {section!r}; expected one of {SECTIONS}")
        path = self.directory / f"{section}.json"
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            document = {}
        document.update(
            section=section,
            mode=self.mode,
            command=FULL_COMMAND if self.mode == "full" else "python -m pytest tests/reliability",
            machine=machine_facts(),
            started=self.started,
        )
        document.setdefault("tests", {})[test_id] = entry
        write_json_atomically(path, document)
        return path


class Figures:
    """One test's figures."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []

    def _put(self, name: str, value: float, aggregate: Aggregate) -> None:
        value = int(value) if isinstance(value, bool) else value  # count(name, condition) counts a 1
        current = self.values.get(name)
        if current is not None and current["aggregate"] != aggregate:
            raise ValueError(f"figure {name!r} is recorded both as {current['aggregate']} and {aggregate}")
        if current is None:
            self.values[name] = {"value": value, "aggregate": aggregate}
        elif aggregate == "sum":
            current["value"] += value
        else:
            current["value"] = max(current["value"], value)

    def count(self, name: str, n: float = 1) -> None:
        """A figure that adds up (cases run, failures), within a test and across tests."""
        self._put(name, n, "sum")

    def peak(self, name: str, value: float) -> None:
        """A figure where the largest value counts (slowest case, memory growth)."""
        self._put(name, value, "max")

    def note(self, text: str) -> None:
        """A sentence for the report under the section: a known gap and its cause, a caveat."""
        if text not in self.notes:
            self.notes.append(text)

    def value(self, name: str) -> float:
        return float(self.values[name]["value"]) if name in self.values else 0.0


@pytest.fixture(scope="session")
def figure_book(tmp_path_factory: pytest.TempPathFactory) -> FigureBook:
    directory = FIGURES_DIR if FULL else tmp_path_factory.mktemp("reliability-figures")
    return FigureBook(directory, MODE)


_OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each test's outcome, so its figures say whether they come from a passing test."""
    report = yield
    if report.when == "call":
        item.stash[_OUTCOME] = report.outcome
    return report


@pytest.fixture
def figures(request: pytest.FixtureRequest, figure_book: FigureBook) -> Iterator[Figures]:
    """Figures of this test, merged into `<section>.json` when it ends (whatever its outcome)."""
    section = getattr(request.module, "SECTION", None)
    if section is None:
        raise RuntimeError(f"{request.module.__name__} must name its reliability SECTION")
    book = Figures()
    started = time.perf_counter()
    yield book
    entry = {
        "outcome": request.node.stash.get(_OUTCOME, "error"),
        "duration_s": round(time.perf_counter() - started, 3),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(),
        "figures": book.values,
        "notes": book.notes,
    }
    figure_book.merge(section, request.node.nodeid, entry)


# -- what a clear message is -----------------------------------------------------------------------------

# A message is clear when a person can act on it: non-empty text of a sane length that is neither a
# traceback, nor a Python repr of an object, nor an exception's class name standing for an explanation.
MESSAGE_MAX_CHARS: Final = 2000
_REPR_MARKERS: Final = (
    "Traceback (most recent call last)",
    " object at 0x",
    "<class '",
    'File "/',
    "\nNone\n",
)
_BARE_EXCEPTION: Final = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)")
_EXCEPTION_PREFIX: Final = re.compile(r"[A-Za-z_][\w.]*(Error|Exception):")
ERROR_CODE: Final = re.compile(r"[a-z][a-z0-9_]*")


def unclear_reason(message: object) -> str | None:
    """Why `message` is not a clear message for a client, or None when it is."""
    if not isinstance(message, str):
        return f"the message is {type(message).__name__}, not text"
    text = message.strip()
    if not text:
        return "the message is empty"
    if len(text) > MESSAGE_MAX_CHARS:
        return f"the message is {len(text)} characters long (more than {MESSAGE_MAX_CHARS})"
    for marker in _REPR_MARKERS:
        if marker in text:
            return f"the message contains {marker.strip()!r}"
    if _BARE_EXCEPTION.fullmatch(text):
        return "the message is a bare exception class name"
    if _EXCEPTION_PREFIX.match(text):
        return "the message starts with an exception class name"
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        return "the message holds control characters"
    return None


def error_body_problem(status: int, content_type: str | None, body: bytes) -> str | None:
    """Why an HTTP error response is not the project's error shape with a clear message, or None.

    The shape is `ErrorResponse`: a JSON object `{"detail": str, "code": str}` (usqa/service/api/errors.py).
    """
    if not (content_type or "").split(";", 1)[0].strip().lower().endswith("json"):
        return f"{status} answered with content type {content_type!r}, not JSON"
    try:
        payload = json.loads(body)
    except ValueError:
        return f"{status} answered with a body that is not JSON: {body[:80]!r}"
    if not isinstance(payload, dict) or set(payload) != {"detail", "code"}:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        return f"{status} body is not {{detail, code}}: {keys}"
    code = payload["code"]
    if not isinstance(code, str) or not ERROR_CODE.fullmatch(code):
        return f"{status} error code {code!r} is not a stable snake_case code"
    reason = unclear_reason(payload["detail"])
    return None if reason is None else f"{status} {code}: {reason}: {str(payload['detail'])[:120]!r}"


# -- server logs -----------------------------------------------------------------------------------------


class ServerLog(logging.Handler):
    """Collects what the server logs at ERROR or with a traceback: a client mistake must log neither."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            with self._lock_records:
                self.records.append(record)

    def mark(self) -> int:
        with self._lock_records:
            return len(self.records)

    def since(self, mark: int) -> list[str]:
        with self._lock_records:
            fresh = self.records[mark:]
        return [
            f"{r.name}: {r.getMessage()}" + (f" ({r.exc_info[1]!r})" if r.exc_info else "") for r in fresh
        ]


@contextlib.contextmanager
def captured_server_log() -> Iterator[ServerLog]:
    """Attach after the server started: uvicorn's logging config replaces the handlers of its loggers."""
    handler = ServerLog()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


# -- the service under test ------------------------------------------------------------------------------


@dataclass
class ServiceUnderTest:
    """A real uvicorn server of the app on 127.0.0.1 with its log; `root` holds its registry and data."""

    live: LiveServer
    log: ServerLog
    root: Path
    redis: bool


@pytest.fixture(scope="session")
def reliability_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture models (tiny ONNX graphs, fast on two cores), the classifier served as the service's model."""
    return build_fixture_registry(tmp_path_factory.mktemp("reliability-registry"))


@contextlib.contextmanager
def service_under_test(registry: Path, root: Path, **overrides: Any) -> Iterator[ServiceUnderTest]:
    """The app with a token (control endpoints reachable), small limits and every folder under `root`."""
    from usqa.service.api import create_app

    models = root / "models"
    if not models.exists():
        shutil.copytree(registry, models)
    values: dict[str, Any] = {
        "api_token": API_TOKEN,
        "data_root": root / "data",
        "jobs_root": root / "jobs",
        "work_root": root / "work",
        "max_upload_bytes": 1024 * 1024,
        "max_ws_message_bytes": WS_MESSAGE_LIMIT,
        "inference_workers": 1,
        "intra_op_threads": 1,
        "warmup_runs": 0,
    }
    values.update(overrides)
    settings = make_settings(models, **values)
    with serve(create_app(settings)) as live, captured_server_log() as log:
        yield ServiceUnderTest(live, log, root, redis=bool(settings.redis_url))


@pytest.fixture(scope="module")
def service(
    reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceUnderTest]:
    """One server per test module, without Redis (the job routes answer 503, as documented)."""
    with service_under_test(reliability_registry, tmp_path_factory.mktemp("service")) as running:
        yield running
