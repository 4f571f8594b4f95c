#!/usr/bin/env bash
# `make test-pythons`: the torch-free part of the suite on each Python version named (3.12 3.13), where this
# machine has it: pyenv's newest <version>.* first, else python<version> on PATH. Each gets its own
# .venv-<version> from requirements/test.lock (service and dev extras, hashed; no torch), reinstalled when the
# lock or pyproject.toml changes. A version not found is reported, not failed: CI machines carry both.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests that need neither torch nor the trainer: the floor, the runtime, the client and command, the
# reliability suite, the container files, the shipped model, the import layers and the wheel. Tests marked
# `torch` among them (a worker that trains) are skipped there, with the reason shown.
TORCH_FREE_TESTS=(tests/contracts tests/service tests/usqa tests/reliability tests/containers tests/models tests/test_layers.py
    tests/test_packaging.py tests/test_locks.py)
# Nothing deselected: the load-with-swaps test was left to 3.11 because 1 to 8 of its 480 frames were dropped
# on 3.12; that was the stream client encoding its cine on an open stream (fixed in cb0af2d), not the Python.
DESELECTED=()

find_python() {
    local version=$1 root candidate
    if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null); then
        for candidate in $(ls -d "$root"/versions/"$version".* 2>/dev/null | sort -V -r); do
            if [[ -x $candidate/bin/python$version ]]; then
                echo "$candidate/bin/python$version"
                return 0
            fi
        done
    fi
    # A pyenv shim answers for versions it does not select; running it tells.
    candidate=$(command -v "python$version" 2>/dev/null) && "$candidate" -c "import sys" 2>/dev/null \
        && echo "$candidate"
}

ran=()
missing=()
for version in "$@"; do
    python=$(find_python "$version") || true
    if [[ -z $python ]]; then
        missing+=("$version")
        continue
    fi
    venv=.venv-$version
    stamp=$venv/.installed
    if [[ ! -f $stamp || requirements/test.lock -nt $stamp || pyproject.toml -nt $stamp ]]; then
        echo "test-pythons: $venv from requirements/test.lock ($python)"
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet --require-hashes -r requirements/test.lock
        "$venv/bin/python" -m pip install --quiet --no-deps -e .
        touch "$stamp"
    fi
    if "$venv/bin/python" -c "import torch" 2>/dev/null; then
        echo "test-pythons: $venv has torch; it is meant to be torch-free" >&2
        exit 1
    fi
    echo "test-pythons: $("$venv/bin/python" --version) - ${TORCH_FREE_TESTS[*]} (deselected: ${DESELECTED[*]:-none})"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TORCH_FREE_TESTS[@]}" ${DESELECTED[@]+"${DESELECTED[@]/#/--deselect=}"}
    ran+=("$("$venv/bin/python" -c 'import platform; print(platform.python_version())')")
done
echo "test-pythons: ran on Python ${ran[*]:-(none)}${missing:+; not found: ${missing[*]}}"
