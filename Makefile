# Papergrade: `make demo` runs the whole loop on this machine; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.train-installed
DATA_DIR ?= ../shared/data
DEMO_DIR ?= demo
# Where `make train` writes its model: a candidate beside the shipped one, so that a run on a
# slower machine cannot replace a better model unseen (MODEL_OUT=grader/models to do so).
MODEL_OUT ?= build/reader-candidate
# START_FROM=grader/models trains the shipped reader further (with new fields: seed 2) instead
# of training one from scratch: the way to fit a useful run in the hour on a CPU without bf16.
START_FROM ?=
# System tools the project shells out to, as "command:debian-package".
SYSTEM_TOOLS := pdftoppm:poppler-utils tesseract:tesseract-ocr redis-server:redis-server

.PHONY: demo test test-fast train train-deps lint bench sysdeps venv clean help

help:
	@echo "make demo   - set up, print a class set, simulate photos, grade them"
	@echo "make test   - set up and run the test suite (make test-fast skips slow tests)"
	@echo "make train  - retrain the handwriting reader from $(DATA_DIR) into $(MODEL_OUT)"
	@echo "              (START_FROM=grader/models: train the shipped reader further)"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - run the benchmark scripts"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The [train] extra (torch, onnx): for training, and for the tests of the trainer.
train-deps: $(TRAIN_STAMP)

$(TRAIN_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[train]'
	@touch $(TRAIN_STAMP)

# Installs missing system tools with apt-get when run as root, otherwise says what to run.
sysdeps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing system packages:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
		else \
			echo "Missing system packages:$$missing"; \
			echo "Install them with: sudo apt-get install$$missing"; exit 1; \
		fi; \
	fi

demo: venv sysdeps
	$(BIN)/papergrade demo --out $(DEMO_DIR)

# Lint first: a type or style error fails as fast as a broken test.
test: venv train-deps sysdeps lint
	$(BIN)/python -m pytest -q

test-fast: venv sysdeps
	$(BIN)/python -m pytest -q -m "not slow"

train: train-deps
	$(BIN)/python -m training.train_reader --data-dir $(DATA_DIR) --out $(MODEL_OUT) --minutes 48 \
		$(if $(START_FROM),--seed 2 --start-from $(START_FROM),--seed 0)
	@echo "Model written to $(MODEL_OUT). Compare it with the shipped one on validation data:"
	@echo "  $(BIN)/python bench/reader.py --split val --model-dir $(MODEL_OUT)"
	@echo "  $(BIN)/python bench/reader.py --split val"
	@echo "and if it is better: cp $(MODEL_OUT)/reader.onnx $(MODEL_OUT)/reader.json grader/models/"
	@echo "then calibrate how doubted readings of the expected answer are credited:"
	@echo "  $(BIN)/python bench/key_match.py --write"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy grader worksheets worker web training bench tests

# The benchmarks docs/benchmarks.md reports.  bench/ also holds development tools run by hand
# (align_failures, blur_limit, key_match).  One that cannot run (no MNIST data for the reader
# and grading benchmarks) does not stop the others; the target fails at the end, naming it.
BENCHMARKS := print_speed align reader grade

bench: venv sysdeps
	@failed=""; \
	for name in $(BENCHMARKS); do \
		echo "== bench/$$name.py"; PAPERGRADE_DATA_DIR=$(DATA_DIR) $(BIN)/python bench/$$name.py || failed="$$failed $$name"; \
	done; \
	[ -z "$$failed" ] || { echo "did not finish:$$failed (their messages are above)"; exit 1; }

clean:
	rm -rf $(VENV) $(DEMO_DIR) out .pytest_cache .mypy_cache .ruff_cache
