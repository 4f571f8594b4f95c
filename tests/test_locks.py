"""The locks (requirements/*.lock, `make lock`) hold what pyproject.toml declares: every dependency of the extras
each lock was compiled for, at a version its specifier admits, each with a hash. `make install` and the images
install a lock and then usqa with --no-deps, so a dependency added to pyproject.toml without `make lock` would
otherwise be missing without a word."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCKS = sorted((REPO_ROOT / "requirements").glob("*.lock"))
# The environment the locks are checked for: the images' and CI's Python on Linux.
ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ;.*)? \\$")


def pins(lock: Path) -> dict[str, list[str]]:
    """name -> the versions the lock pins (a universal lock may pin one per Python range)."""
    found: dict[str, list[str]] = {}
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            found.setdefault(canonicalize_name(match.group(1)), []).append(match.group(2))
    return found


def compiled_for(lock: Path) -> tuple[list[str], set[str]]:
    """The extras and the packages left out (--no-emit-package) of the command in the lock's header."""
    header = next(line for line in lock.read_text().splitlines()[:3] if "uv pip compile" in line)
    return re.findall(r"--extra (\S+)", header), set(re.findall(r"--no-emit-package (\S+)", header))


def declared(extras: list[str]) -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"]]
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return [Requirement(text) for text in requirements]


def test_there_are_the_four_locks() -> None:
    assert [lock.name for lock in LOCKS] == ["dev.lock", "service.lock", "test.lock", "worker.lock"]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_a_lock_pins_every_declared_dependency_of_its_extras(lock: Path) -> None:
    extras, left_out = compiled_for(lock)
    assert extras, f"{lock.name}: no --extra in its header"
    pinned = pins(lock)
    problems = []
    for requirement in declared(extras):
        name = canonicalize_name(requirement.name)
        if name in left_out or (requirement.marker and not requirement.marker.evaluate(ENVIRONMENT)):
            continue
        versions = pinned.get(name, [])
        if not any(requirement.specifier.contains(v, prereleases=True) for v in versions):
            problems.append(f"{requirement} (locked: {versions or 'absent'})")
    assert not problems, f"{lock.name} is stale, run `make lock`: " + "; ".join(problems)


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_every_pin_has_a_hash(lock: Path) -> None:
    lines = lock.read_text().splitlines()
    unhashed = [
        line.split(" ")[0]
        for i, line in enumerate(lines)
        if PIN.match(line) and not (i + 1 < len(lines) and lines[i + 1].strip().startswith("--hash=sha256:"))
    ]
    assert not unhashed, f"{lock.name}: pins without a hash: {unhashed}"
