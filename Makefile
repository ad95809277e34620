# vsgg: `make demo` and `make test` each do all set-up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test install bench default-model clean

# torch first, from the local CPU wheel: an unpinned resolve would pull GBs of CUDA packages.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vsgg demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Every benchmark, figures printed and written to out/bench_*.json (numbers, not pass/fail: the machine is shared).
bench: $(STAMP)
	$(BIN)/vsgg bench tracker --json out/bench_tracker.json
	$(BIN)/vsgg bench model --json out/bench_model.json
	$(BIN)/vsgg bench engine --json out/bench_engine.json
	$(BIN)/vsgg bench detector --json out/bench_detector.json

# Retrain the shipped default relation model (about 25 min on 2 cores), then export, evaluate and write its card.
default-model: $(STAMP)
	$(BIN)/vsgg train --preset default --no-resume
	$(BIN)/vsgg release --checkpoint runs/default/best --out engine/models/default

clean:
	rm -rf $(VENV) out runs .pytest_cache
