# Two entry points: `make demo` (end to end on a synthetic corpus) and `make test`.
# Both create .venv from the project's own files when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact environment: hashed locks of every package but torch (requirements/*.lock, from
# pyproject by `make lock`), and the torch pin of requirements/torch.txt (overridable per
# platform: TORCH_INDEX=https://download.pytorch.org/whl/cu128 takes the pin from that index, or
# TORCH_SPEC="torch==2.13.0 --index-url ..." replaces it). A machine that only runs Ictal (a
# cloud VM) installs the runtime lock: make venv LOCK=requirements/runtime.lock.
LOCK ?= requirements/dev.lock
# SzCORE's own evaluator, a test dependency only (dev lock): it declares Python >=3.12 but runs
# on 3.11, hence --ignore-requires-python (requirements/szcore-evaluation.txt).
SZCORE_EVALUATOR := $(BIN)/pip install --quiet --require-hashes --no-deps \
	--ignore-requires-python -r requirements/szcore-evaluation.txt
TORCH_INDEX ?=
TORCH_SPEC ?= $(shell grep -v '^\#' requirements/torch.txt)$(if $(TORCH_INDEX), --index-url $(TORCH_INDEX))
# `make lock` resolves against the CPU torch build (no CUDA packages in the locks): found in
# this machine's wheel directory; elsewhere LOCK_SOURCES="--extra-index-url
# https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match".
LOCK_SOURCES ?= --find-links /opt/wheels
UV ?= $(BIN)/uv
DEMO_CFG := configs/demo.yaml
# The tests spread over TEST_WORKERS processes (pytest-xdist), each test file whole on one
# worker so the file's shared setup is made once; TEST_WORKERS=0 runs them in one process.
# Three on two cores: many tests wait on the processes they start, and a third keeps both cores
# busy (2026-12-06, whole suite: 7:47-8:00 with three, 8:14 with two; the same CPU time).
# Four were slower (2026-12-07: 9:09 against 8:40). The files go out in xdist's order (most
# tests first), except that tests/conftest.py (FIRST) hands the files of a few long tests out
# before it, so they do not run alone at the end (8:40 -> 7:53); giving all the longest first
# was slower (12:54 against 11:53, 2026-12-06): clusters and process groups slowed each other.
TEST_WORKERS ?= 3
PYTEST_SPREAD := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
# Bytecode: where PYTHONDONTWRITEBYTECODE is set (some sandboxes and CI machines), every process
# compiled Ictal's modules from source again, and every test worker rewrote every test file:
# about 200 of the suite's 1,400 CPU seconds on a fresh clone (2026-12-06). `compileall` writes
# src's once; the tests may write theirs, in the project's own ignored __pycache__ directories.
# A checkout it cannot write to runs the same tests, without the cache.
BYTECODE := $(BIN)/python -m compileall -qq src || echo "src/ is not writable: no bytecode cache"

.PHONY: venv lock demo test test-fast lint clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK) requirements/torch.txt requirements/szcore-evaluation.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(if $(filter requirements/dev.lock,$(LOCK)),$(SZCORE_EVALUATOR))
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

# Regenerate the locks from pyproject (after changing a dependency); commit both.
lock:
	printf '%s+cpu\n' "$$(grep -v '^#' requirements/torch.txt)" > requirements/.torch-cpu
	$(UV) pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 $(LOCK_SOURCES) --constraint requirements/.torch-cpu \
	  --extra dev --extra s3 --extra gpu --extra ray --extra modal --extra skypilot --extra onnx \
	  --extra wandb --extra mlflow --extra braindecode \
	  --no-emit-package torch -o requirements/dev.lock
	$(UV) pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 $(LOCK_SOURCES) --constraint requirements/.torch-cpu \
	  --constraint requirements/dev.lock --extra s3 --extra gpu \
	  --no-emit-package torch -o requirements/runtime.lock
	rm requirements/.torch-cpu

demo: $(STAMP)
	$(BYTECODE)
	bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BYTECODE)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q $(PYTEST_SPREAD)

# The edit-test loop: everything but the tests marked slow (CI runs them all with `make test`).
test-fast: $(STAMP)
	$(BIN)/ruff check src tests bench deploy
	$(BYTECODE)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_SPREAD)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench deploy

clean-demo:
	rm -rf demo
