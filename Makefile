# usqa: two commands on a fresh machine (README): `make demo` and `make test`.
# `make install` is the one step both share; it creates .venv at the repo root and is re-run only when
# pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `make install` installs: a lock (`make lock`) with every package pinned and hashed, then usqa itself
# editable without dependencies. dev.lock (service, train and dev extras) is resolved for CPython 3.11 on
# x86-64 Linux with torch 2.13.0+cpu, the wheel on the build machines' disk (pip's find-links); on 3.12 and
# 3.13, for which that wheel does not exist, it is test.lock (service and dev extras, no torch: the trainer's
# tests need 3.11). LOCK=... picks another.
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK ?= $(if $(filter 3.11,$(PY_VERSION)),requirements/dev.lock,requirements/test.lock)
# 0 skips the apt-get step of `make install` (install redis-server, chromium, orthanc and orthanc-dicomweb
# yourself).
SYSTEM_DEPS ?= 1
DEMO_OUT ?= runs/demo

.PHONY: install lock test-pythons system-deps demo test lint typecheck unit reliability bench docs-figures docs-examples results heating-analysis default-model thyroid-model compose-test clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" && $(PYTHON) -c "import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13)" || { echo "make install: usqa needs Python 3.11, 3.12 or 3.13 (python3.11 on PATH, or PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0+cpu comes from the wheel on local disk through pip's find-links; pip, not uv.
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(if $(filter 0,$(SYSTEM_DEPS)),,$(MAKE) --no-print-directory system-deps)
	touch $(STAMP)

# The locks, refreshed from pyproject.toml (uv, from the dev extra; newest versions that fit): dev.lock for
# `make install` on 3.11 (torch 2.13.0+cpu from /opt/wheels, as requirements/torch-cpu.txt says); test.lock, the
# torch-free development install for 3.11 to 3.13 (universal: markers pick per Python); service.lock, the API
# image; worker.lock, the worker image less torch, which the image installs first from the PyTorch index of
# its TORCH_VARIANT (resolved against the CPU wheel, so no CUDA package enters the lock).
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --generate-hashes --quiet --python-version 3.11
LOCK_CPU_TORCH = --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --override requirements/torch-cpu.txt
lock: install
	$(LOCK_COMPILE) --extra service --extra train --extra dev $(LOCK_CPU_TORCH) -o requirements/dev.lock
	$(LOCK_COMPILE) --extra service --extra dev --universal -o requirements/test.lock
	$(LOCK_COMPILE) --extra service --universal -o requirements/service.lock
	$(LOCK_COMPILE) --extra service --extra train $(LOCK_CPU_TORCH) --no-emit-package torch -o requirements/worker.lock

# The torch-free part of the suite on the other supported Pythons found here (pyenv's 3.12 and 3.13, else
# python3.12/python3.13 on PATH), each in its own .venv-3.1x from test.lock; it names the Pythons it ran.
# CI runs it after `make test`.
test-pythons:
	@bash scripts/test-pythons.sh 3.12 3.13

# System packages a test needs, installed only when missing (CI machines start with Python alone).
system-deps:
	@bash scripts/system-deps.sh redis-server:redis-server chromium:chromium Orthanc:orthanc \
		/usr/share/orthanc/plugins/libOrthancDicomWeb.so:orthanc-dicomweb

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest

test: lint typecheck unit

# The reliability suite in full (figures in runs/reliability/, one JSON file per section), then
# docs/reliability.md from those figures, also when a test failed (the page says which); `make test` runs
# the same tests with small case counts and writes no figures.
reliability: install
	rm -rf runs/reliability
	USQA_RELIABILITY=full $(BIN)/python -m pytest tests/reliability -p no:cacheprovider; status=$$?; \
		$(BIN)/python -m docs_gen.reliability_report && exit $$status

# The images built and the compose stack run for real (scripts/compose_test/): 2 APIs behind the proxy,
# 2 workers, a worker and an API killed; rewrites docs/deploy.md's image table. Not part of `make test` (CI
# machines have no Docker engine): without one it says "skipped" and succeeds. TORCH_INDEX_URL, when set, is
# the torch index of the worker image's build.
compose-test: install
	$(BIN)/python -m scripts.compose_test

demo: install
	$(BIN)/usqa demo --out $(DEMO_OUT)

bench: install
	$(BIN)/python -m bench.simulator_speed
	$(BIN)/python -m bench.service_latency --registry models --name usqa-prostate \
		$(if $(wildcard $(DEFAULT_MODEL_RUN)/run/model.pt),--run $(DEFAULT_MODEL_RUN)/run)
	$(BIN)/python -m bench.deploy_footprint
	$(BIN)/python -m bench.live_isolation --registry models --name usqa-prostate

# The generalisation benchmark: every method on the development, held-out and real-frame data sets, 3 seeds
# each, into the generated block of docs/results.md (~1 h on 2 cores; runs/generalisation is reused by config).
# The single-set Table-1 analogue and the preset timings stay separate commands (`python -m
# experiments.results`, `python -m experiments.results.timing --threads 1`; another ~1 h together).
results: install
	nice -n 10 $(BIN)/python -m experiments.generalisation --jobs 2

heating-analysis: install
	$(BIN)/python -m experiments.heating_analysis

# The models that ship in models/ (champions): two exams, each simulated, trained, evaluated and exported.
DEFAULT_MODEL_RUN ?= runs/default-model
THYROID_MODEL_RUN ?= runs/thyroid-model
DEFAULT_MODEL_CONFIG ?= default
# A shipped model: $(1) its name, $(2) the simulator preset, $(3) the data seed, $(4) the run folder. The
# development distribution (evidence-loss degradations, half the frames degraded; docs/simulator.md) at a seed
# of its own, the default budget and the per-frame-credit controller (docs/controller.md). `usqa export`
# refuses it if the controller learned nothing (kappa <= 0). 4,800 frames (the default budget's ~5,000): the
# controller learns from the validation split's frames, and 2,400 gave it too few to generalise from
# (docs/recipe.md, "The shipped model").
define ship_model
	$(BIN)/usqa simulate --out $(4)/data --frames 4800 --subjects 160 --seed $(3) --size 128 \
		--preset $(2) --mix evidence_loss --degraded-fraction 0.5 --force
	$(BIN)/usqa train --data $(4)/data --task classify --reward weighted --algo credit \
		--config $(DEFAULT_MODEL_CONFIG) --out $(4)/run --quiet
	$(BIN)/usqa evaluate --run $(4)/run --data $(4)/data --out $(4)/run/eval
	$(BIN)/usqa export --run $(4)/run --data $(4)/data --registry models \
		--name $(1) --alias champion --class-names no_gland,gland
endef

# usqa-prostate (transrectal prostate, the default exam) and usqa-thyroid (linear thyroid): one service serves
# both (docs/service.md, "Several exams").
default-model: install
	$(call ship_model,usqa-prostate,transrectal_prostate,7,$(DEFAULT_MODEL_RUN))
	$(call ship_model,usqa-thyroid,linear_thyroid,8,$(THYROID_MODEL_RUN))
	$(MAKE) --no-print-directory docs-examples

# The second exam alone.
thyroid-model: install
	$(call ship_model,usqa-thyroid,linear_thyroid,8,$(THYROID_MODEL_RUN))

# docs/service.md's example exchanges, answered by the shipped model.
docs-examples: install
	$(BIN)/python -m docs_gen.service_example

# Figures committed in docs/ (contact sheets of each preset and degradation).
docs-figures: install
	$(BIN)/python -m docs_gen.contact_sheets --out docs/img

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
