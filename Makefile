# Two commands from a fresh clone: `make demo` (the offline main job) and `make test`.
# Both first install everything into .venv (torch from the local CPU wheel where there is one).
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export MPLBACKEND := Agg
export TOKENIZERS_PARALLELISM := false
TORCH ?= torch==2.13.0

.PHONY: install demo test check readme clean
install: $(STAMP)

$(STAMP): requirements.txt settings.ini setup.py
	python3 -m venv $(VENV)
	# torch first: the pinned CPU wheel if this machine has it, else the registry's build
	$(BIN)/pip install -q "$(TORCH)" || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -r requirements.txt "torch==$$($(BIN)/python -c 'import torch; print(torch.__version__.split("+")[0])')"
	$(BIN)/pip install -q --no-deps -e .
	touch $@

demo: $(STAMP)
	mkdir -p runs
	$(BIN)/papermill nbs/data.ipynb runs/data.ipynb --cwd nbs
	for m in blip vit-gpt2 clip-gpt2; do $(BIN)/papermill nbs/train.ipynb runs/train-$$m.ipynb --cwd nbs -p model $$m || exit 1; done
	@echo "demo done: see runs/, results/ and figures/"

test: $(STAMP)
	cd nbs && $(BIN)/nbdev_test --n_workers 2
	$(BIN)/pytest -q tests

# CI: the package must equal what the notebooks export, notebooks must be clean, README must match index.ipynb
check: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@changed=$$(git status --porcelain -- imgcap2text nbs); if [ -n "$$changed" ]; then \
	  echo "nbdev_export / nbdev_clean changed these files (export and clean, then commit):"; echo "$$changed"; exit 1; fi
	$(BIN)/python tools/readme.py --check

readme:
	python3 tools/readme.py

clean:
	rm -rf runs results figures/*.pdf figures/*.png figures/data report/build report/generated
