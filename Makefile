# edgerank: set-up, demo and tests. `make demo` and `make test` work on a fresh clone.
#
# Set-up installs torch FIRST, pinned by constraints.txt, so that no later requirement can swap it
# for another build (on PyPI a bare `torch` for Linux x86_64 is the multi-GB CUDA build).
# GPU users: `make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128` (see README, "GPU users").

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
EDGERANK ?= $(VENV)/bin/edgerank
CONSTRAINTS ?= constraints.txt
# Empty: pip's usual indexes. Set to a PyTorch wheel index to pick the build (CPU-only or a CUDA).
TORCH_INDEX ?=
STAMP ?= $(VENV)/.edgerank-installed
PYTEST_ARGS ?=

SHOP := edgerank/samples
DEMO ?= runs/demo
# About a minute or two on 2 CPU cores (see README); beats BM25 on the shop's dev queries.
DEMO_MAX_LENGTH ?= 64
DEMO_TEACHER_ARGS ?= --epochs 3 --batch-size 16 --lr 1e-4

.PHONY: help setup test demo demo-teacher demo-eval clean-demo

help:
	@echo "make demo   set up .venv, then run the demo on the sample shop (outputs in $(DEMO)/)"
	@echo "make test   set up .venv, then run the test suite"
	@echo "make setup  only create/update .venv (torch $(shell sed -n 's/^torch==//p' $(CONSTRAINTS)) first, then edgerank[train,test])"
	@echo "demo steps: demo-teacher, demo-eval   clean-demo removes $(DEMO)/"

setup: $(STAMP)

# Re-runs when pyproject.toml or the constraints change; pip skips what is already satisfied.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --constraint $(CONSTRAINTS) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch
	$(PY) -m pip install --constraint $(CONSTRAINTS) -e '.[train,test]'
	@touch $@

# pytest's exit 5 means it collected no test: say so rather than let it pass for a green run.
test: setup
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): treated as a failure" >&2; fi; \
	exit $$rc

# The demo is a chain of named steps; later steps (distill, export, bench) slot in after demo-eval.
demo: demo-teacher demo-eval
	@echo "demo done: teacher in $(DEMO)/teacher, report in $(DEMO)/eval.json"

demo-teacher: $(DEMO)/teacher/metrics.json

$(DEMO)/teacher/metrics.json: $(STAMP) $(SHOP)/shop_train.csv
	@echo "== demo-teacher: fine-tune all-MiniLM-L6-v2 as a cross-encoder on the sample shop"
	rm -rf $(DEMO)/teacher.partial
	time $(EDGERANK) teacher --train $(SHOP)/shop_train.csv --out $(DEMO)/teacher \
	  --backbone all-MiniLM-L6-v2 --max-length $(DEMO_MAX_LENGTH) $(DEMO_TEACHER_ARGS)

demo-eval: demo-teacher
	@echo "== demo-eval: the teacher next to BM25 on the shop's held-out queries"
	$(EDGERANK) eval --model $(DEMO)/teacher --data $(SHOP)/shop_dev.csv --max-length $(DEMO_MAX_LENGTH) --json $(DEMO)/eval.json

clean-demo:
	rm -rf $(DEMO)
