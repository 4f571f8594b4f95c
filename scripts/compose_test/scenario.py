"""The run on the stack: up and healthy, the user's paths, jobs, promotion, the faults, healthy at the end."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from scripts.compose_test.config import API_REPLICAS, HEALTHY_TIMEOUT_S, READY_MARKERS, WORKERS
from scripts.compose_test.engine import Stack, healthy_now, inspect, ready_after_s
from scripts.compose_test.faults import kill_one_api, kill_worker_mid_job
from scripts.compose_test.jobs import promote_everywhere, run_two_jobs
from scripts.compose_test.shell import Failed, log, phase, until
from scripts.compose_test.user_paths import check_user_paths, upload_dataset


def wait_healthy(stack: Stack) -> dict[str, float | None]:
    """Every container healthy (each has a healthcheck); then each one's start-up to ready, from its log."""
    expected = {"redis": 1, "proxy": 1, "api": API_REPLICAS, "worker": WORKERS}

    def healthy() -> bool:
        containers = stack.all_containers()
        for service, count in expected.items():
            if len(containers[service]) != count:
                return False
            for container in containers[service]:
                status = inspect(container, "{{.State.Health.Status}}")
                if status == "unhealthy":
                    raise Failed(f"{service} {container[:12]} is unhealthy")
                if status != "healthy":
                    return False
        return True

    until(healthy, HEALTHY_TIMEOUT_S, "every container to be healthy", interval=2.0)
    ready: dict[str, float | None] = {}
    for service, marker in READY_MARKERS.items():
        seconds = [ready_after_s(c, marker) for c in stack.containers(service)]
        known = [s for s in seconds if s is not None]
        ready[service] = max(known) if known else None
    return ready


def check_read_only(stack: Stack) -> None:
    for service in ("proxy", "api", "worker"):
        for container in stack.containers(service):
            if inspect(container, "{{.HostConfig.ReadonlyRootfs}}") != "true":
                raise Failed(f"{service} {container[:12]} has a writable root file system")


def save_logs(stack: Stack, out: Path) -> None:
    text = stack.compose("logs", "--no-color", "--tail", "200", timeout=120, check=False)
    (out / "compose.log").write_text(text)
    log(f"container logs: {out / 'compose.log'}")


def scenario(stack: Stack, times: dict[str, float], out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with phase(times, "up"):
        stack.compose(
            "up", "-d", "--no-build", "--scale", f"api={API_REPLICAS}", "--scale", f"worker={WORKERS}"
        )
        results["ready_s"] = wait_healthy(stack)
        check_read_only(stack)
    with phase(times, "user checks"):
        results["user"] = check_user_paths(stack)
    with phase(times, "upload"), tempfile.TemporaryDirectory(prefix="usqa-compose-test-") as tmp:
        dataset = upload_dataset(stack, Path(tmp))
    with phase(times, "two jobs"):
        results["jobs"] = run_two_jobs(stack, dataset)
    with phase(times, "promotion"):
        promote_everywhere(stack, results["jobs"]["version"])
    with phase(times, "worker kill"):
        results["worker_kill"] = kill_worker_mid_job(stack, dataset)
    with phase(times, "api kill"):
        results["api_kill"] = kill_one_api(stack)
    # Every container left running still passes its healthcheck at the end (the workers after their jobs).
    final = {c: healthy_now(c, "at the end of the run") for cs in stack.all_containers().values() for c in cs}
    worker_checks = {
        **results["jobs"]["worker_healthcheck_s"],
        **results["worker_kill"]["worker_healthcheck_s"],
        **{k: v for c in stack.containers("worker") for k, v in final[c].items()},
    }
    results["worker_healthcheck_max_s"] = max(seconds for seconds, _ in worker_checks.values())
    results["worker_healthcheck_failed"] = sum(1 for _, code in worker_checks.values() if code != 0)
    results["worker_healthchecks"] = len(worker_checks)
    return results
