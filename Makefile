# Two commands set everything up on a fresh clone: `make demo` (the main job, offline) and `make test`.
# Both create .venv/ and install exactly the versions pinned in requirements/lock.txt (every file's hash
# checked, no dependency resolution), then divita itself as an editable package. docs/development.md explains
# the lock, `make lock` and the checks CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
# Extra pip-compile options for `make lock`, e.g. LOCK_ARGS=--upgrade or LOCK_ARGS='--upgrade-package ruff'
LOCK_ARGS ?=

.PHONY: demo demo-study test lint format check-lock check-cli-docs cli-docs docs lock install bench clean

# The lock pins pip itself (a release pip-tools supports), setuptools and wheel: the editable install builds
# with those (--no-build-isolation) instead of fetching the newest setuptools.
$(STAMP): $(LOCK) pyproject.toml
	@echo "Installing $(LOCK) into $(VENV)/ (the first time takes a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/divita demo --out results/demo

# One of the paper's studies (segmentation: shots vs fixed clips) on generated videos, offline (docs/studies.md).
demo-study: $(STAMP)
	$(BIN)/divita demo --study segmentation --out results/demo-study

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rewrites the code in the project's format and applies ruff's safe fixes.
format: $(STAMP)
	$(BIN)/ruff check --fix-only .
	$(BIN)/ruff format .

# Fails when requirements/lock.txt is not the lock of pyproject.toml and requirements/dev.in.
check-lock: $(STAMP)
	$(BIN)/python scripts/check_lock.py

# Fails when docs/cli.md is not what `make cli-docs` would write.
check-cli-docs: $(STAMP)
	$(BIN)/python scripts/cli_reference.py --check

cli-docs: $(STAMP)
	$(BIN)/python scripts/cli_reference.py

# Recompiles the lock from pyproject.toml (dependencies and every extra) and requirements/dev.in. Pins that
# still satisfy the requirements are kept unless LOCK_ARGS asks for upgrades.
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe \
		--strip-extras --all-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) \
		--output-file $(LOCK) pyproject.toml requirements/dev.in

# The user guide and the API reference generated from the docstrings, into site/ (every warning an error).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/backbone_throughput.py
	$(BIN)/python benchmarks/extract_throughput.py

clean:
	rm -rf $(VENV) results site .pytest_cache
