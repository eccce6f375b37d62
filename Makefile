# Every target calls the chameleon CLI (or pytest); the venv is created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

MODEL    ?= resnet18
TARGET   ?= llvm
TRIALS   ?= 600
STRATEGY ?= chameleon
SEED     ?= 0
BATCH    ?= 1
SIZE     ?=
LOG_DIR  ?= runs/$(MODEL)-$(TARGET)
TRACKER  ?=
KEY      ?=
SERVERS  ?= 2
FARM_PORT ?= 9190
FARM_ARGS := $(if $(TRACKER),--tracker $(TRACKER)) $(if $(KEY),--key $(KEY))
WARM     ?=
PASSES   ?= 1
SHAPE_ARGS := --batch $(BATCH) $(if $(SIZE),--image-size $(SIZE))
WARM_ARGS := $(foreach w,$(WARM),--warm-start $(w))

.PHONY: help install tune confirm replay report test test-fast lint bench bench-quick bench-transfer bench-offline farm clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "  variables: MODEL=$(MODEL) TARGET=$(TARGET) TRIALS=$(TRIALS) STRATEGY=$(STRATEGY) SEED=$(SEED) BATCH=$(BATCH) SIZE= (image size; sequence length for bert_mini) TRACKER= KEY= WARM= (earlier logs to pre-train on) PASSES=$(PASSES) (interleaved timing passes per round, fastest kept)"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install chameleon with pinned dependencies

tune: $(STAMP)  ## tune MODEL for TARGET (TRIALS, STRATEGY, BATCH, SIZE, TRACKER, KEY, WARM, PASSES), re-measure each task's best records, replay the log
	$(BIN)/chameleon tune --model $(MODEL) --target $(TARGET) --trials $(TRIALS) --strategy $(STRATEGY) --seed $(SEED) $(SHAPE_ARGS) --log-dir $(LOG_DIR) $(FARM_ARGS) $(WARM_ARGS) --measure-passes $(PASSES)
	$(BIN)/chameleon confirm $(LOG_DIR) $(FARM_ARGS)
	$(BIN)/chameleon replay $(LOG_DIR)

confirm: $(STAMP)  ## re-measure each task's best records of LOG_DIR; replay then compiles from the medians
	$(BIN)/chameleon confirm $(LOG_DIR) $(FARM_ARGS)

replay: $(STAMP)  ## compile LOG_DIR's best records, export and time the network (e.g. LOG_DIR=tuning_logs/resnet18/llvm)
	$(BIN)/chameleon replay $(LOG_DIR)

report: $(STAMP)  ## per-task table and plot for LOG_DIR
	$(BIN)/chameleon report $(LOG_DIR)

test: $(STAMP)  ## the whole test suite (unit, property and end-to-end; ~16 min on 2 cores)
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP)  ## unit and property tests only
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check chameleon tests experiments
	$(BIN)/ruff format --check chameleon tests experiments

bench: $(STAMP)  ## online benchmark, full preset (hours; runs on this machine's CPU)
	$(BIN)/python -m experiments.bench --preset full

bench-quick: $(STAMP)  ## online benchmark, quick preset (1 seed; its 2-seed run took ~25 min on 2 cores)
	$(BIN)/python -m experiments.bench --preset quick

bench-transfer: $(STAMP)  ## warm start (issue 5): chameleon on an AVX2-only target, cold vs pre-trained on the AVX-512 dataset
	$(BIN)/python -m experiments.bench --preset quick --seeds 2 --target llvm-avx2 --strategy chameleon \
	  --baseline chameleon --warm-start experiments/datasets/resnet18-llvm.tar.gz --out transfer-avx2

bench-offline: $(STAMP)  ## every strategy over many seeds on the committed datasets (simulated)
	$(BIN)/python -m experiments.bench_offline

farm: $(STAMP)  ## a local farm: tracker + SERVERS CPU servers on 127.0.0.1 (Ctrl-C stops it)
	$(BIN)/chameleon farm local --servers $(SERVERS) --key local-cpu --port $(FARM_PORT)

clean:  ## remove build outputs (keeps .venv and tuning_logs)
	rm -rf runs .pytest_cache .ruff_cache
