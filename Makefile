# Two entry points: `make demo` (end to end on a synthetic corpus) and `make test`.
# Both create .venv from the project's own files when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU build pinned for CI and this machine; set TORCH_SPEC="torch" to take any recent torch.
TORCH_SPEC ?= torch==2.13.0
DEMO_CFG := configs/demo.yaml

.PHONY: venv demo test test-fast lint clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -q

# The edit-test loop: everything but the tests marked slow (CI runs them all with `make test`).
test-fast: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean-demo:
	rm -rf demo
