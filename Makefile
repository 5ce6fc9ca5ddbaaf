# edgerank: set-up, demo and tests. `make demo` and `make test` work on a fresh clone.
#
# Set-up installs torch FIRST, pinned by constraints.txt, so that no later requirement can swap it
# for another build (on PyPI a bare `torch` for Linux x86_64 is the multi-GB CUDA build).
# GPU users: `make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128` (see README, "Install").

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
# About a minute or two on 2 CPU cores (see docs/results.md); beats BM25 on the shop's dev queries.
DEMO_MAX_LENGTH ?= 64
DEMO_TEACHER_ARGS ?= --epochs 3 --batch-size 16 --lr 1e-4
# Two epochs: the default --augment 4 gives each epoch five times the lists (6 epochs without it gave
# the same nDCG@10 and a student further from the teacher's order: Kendall tau 0.71 vs 0.74).
DEMO_DISTILL_ARGS ?= --layers 2 --epochs 2 --batch-size 16 --lr 2e-4

.PHONY: help setup test lint demo demo-teacher demo-eval demo-distill demo-export demo-bench clean-demo

help:
	@echo "make demo   set up .venv, then run the demo on the sample shop (outputs in $(DEMO)/)"
	@echo "make test   set up .venv, then run the test suite"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make setup  only create/update .venv (torch $(shell sed -n 's/^torch==//p' $(CONSTRAINTS)) first, then edgerank[train,test])"
	@echo "demo steps: demo-teacher, demo-eval, demo-distill, demo-export, demo-bench   clean-demo removes $(DEMO)/"

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

# ruff: lint and format, as CI checks them (`ruff format .` fixes the format)
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The demo is a chain of named steps: teacher -> eval -> distill -> export (INT8) -> bench.
demo: demo-teacher demo-eval demo-distill demo-export demo-bench
	@echo "demo done: teacher $(DEMO)/teacher, student $(DEMO)/student, INT8 artifact $(DEMO)/student-int8,"
	@echo "           benchmark $(DEMO)/bench.md, Pareto plot $(DEMO)/pareto.png"

demo-teacher: $(DEMO)/teacher/metrics.json

$(DEMO)/teacher/metrics.json: $(STAMP) $(SHOP)/shop_train.csv
	@echo "== demo-teacher: fine-tune all-MiniLM-L6-v2 as a cross-encoder on the sample shop"
	rm -rf $(DEMO)/teacher.partial
	time $(EDGERANK) teacher --train $(SHOP)/shop_train.csv --out $(DEMO)/teacher \
	  --backbone all-MiniLM-L6-v2 --max-length $(DEMO_MAX_LENGTH) $(DEMO_TEACHER_ARGS)

demo-eval: demo-teacher
	@echo "== demo-eval: the teacher next to BM25 on the shop's held-out queries"
	$(EDGERANK) eval --model $(DEMO)/teacher --data $(SHOP)/shop_dev.csv --max-length $(DEMO_MAX_LENGTH) --json $(DEMO)/eval.json

demo-distill: $(DEMO)/student/report.json

$(DEMO)/student/report.json: $(DEMO)/teacher/metrics.json
	@echo "== demo-distill: a 2-layer student trained on the teacher's scores"
	rm -rf $(DEMO)/student.partial
	time $(EDGERANK) distill --teacher $(DEMO)/teacher --train $(SHOP)/shop_train.csv --dev $(SHOP)/shop_dev.csv \
	  --out $(DEMO)/student --max-length $(DEMO_MAX_LENGTH) $(DEMO_DISTILL_ARGS)

demo-export: $(DEMO)/student-int8/manifest.json

# The quality gate runs on the shop's 27 dev queries, each topped up to a serving list of 100 from the
# shop's catalog: export fails, writing nothing, if INT8 loses too much. The default allowance (1% of
# the fp32 gain over BM25 on the random-fill lists) is far below what one swapped pair in one of 27
# queries moves, and one swap at the top-10 cut costs a query 0.1 of overlap, so on the demo the gate
# only catches a broken export; on real dev sets with hundreds of queries keep the defaults.
DEMO_GATE ?= --max-quality-drop 0.25 --min-agreement 0.9
$(DEMO)/student-int8/manifest.json: $(DEMO)/student/report.json
	@echo "== demo-export: the student as an INT8 ONNX artifact, behind the quality gate"
	rm -rf $(DEMO)/student-int8
	$(EDGERANK) export --model $(DEMO)/student --out $(DEMO)/student-int8 --precision int8-dynamic \
	  --max-length $(DEMO_MAX_LENGTH) --eval-data $(SHOP)/shop_dev.csv $(DEMO_GATE)

demo-bench: demo-export
	@echo "== demo-bench: INT8 student vs torch teacher and peers on the same weights"
	$(EDGERANK) bench --suite bench/suites/sample-shop.toml --markdown $(DEMO)/bench.md --json $(DEMO)/bench.json \
	  --plot $(DEMO)/pareto.png

clean-demo:
	rm -rf $(DEMO)
