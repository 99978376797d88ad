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
# where the environment says not to write bytecode (these machines do), every process compiled the modules it imports
# again: 11.3 s to import the evaluation, 4.7 s once the first process has left its .pyc files (__pycache__, which git ignores)
unexport PYTHONDONTWRITEBYTECODE
# bert-score batches a set() of sentences: a fixed hash seed gives the same batches, so reruns match to the last digit
export PYTHONHASHSEED := 0
TORCH ?= torch==2.13.0

.PHONY: install demo report latex bench learning-curve test check readme clean docs chromium notebooks gpu-wheels screenshot
install: $(STAMP)

# uv installs the rest in seconds where pip took over a minute (the same versions); where uv cannot run, pip does it
PIP_REST = $(BIN)/uv pip install -q --python $(BIN)/python
$(STAMP): requirements.txt settings.ini setup.py
	python3 -m venv $(VENV)
	$(BIN)/pip install -q uv || true
	# torch first: the pinned CPU wheel if this machine has it (where pip's find-links point: uv unpacks it in seconds, pip
	# took 16 s), else the registry's build
	links=$$(for d in $$PIP_FIND_LINKS $$($(BIN)/pip config get global.find-links 2>/dev/null); do echo "--find-links $$d"; done); \
	  $(PIP_REST) $$links "$(TORCH)" || $(BIN)/pip install -q "$(TORCH)" || $(BIN)/pip install -q torch
	torch="torch==$$($(BIN)/python -W ignore -c 'import torch; print(torch.__version__.split("+")[0])')"; \
	  $(PIP_REST) -r requirements.txt "$$torch" || $(BIN)/pip install -q -r requirements.txt "$$torch"
	# CLIP Interrogator's label tables: its wheel's data only (its module imports open_clip, which pulls torchvision and a CUDA torch)
	$(PIP_REST) --no-deps "clip-interrogator==0.6.0" || $(BIN)/pip install -q --no-deps "clip-interrogator==0.6.0"
	# CLIP's own BPE (OpenAI's, as open-clip-torch ships it) for exact CLIP token counts offline: its data only, as above
	$(PIP_REST) --no-deps "open-clip-torch==3.3.0" || $(BIN)/pip install -q --no-deps "open-clip-torch==3.3.0"
	$(PIP_REST) --no-deps -e . || $(BIN)/pip install -q --no-deps -e .
	touch $@

# data -> the split's tiny CLIP (the offline CLIP scorer, the CLIP-prefix model's encoder, the demo's tagger) and BLIP (its
# tagged tower is ViT-GPT2's too) -> the CLIP-prefix model and ViT-GPT2; the split's own systems scored once
# (evaluate-clip-prompt) -> each captioner's evaluation -> analysis -> figures -> PDF. Each stage skips what is already done.
MODELS := clip-gpt2 blip vit-gpt2
# the report's leaky split by image: measured by its nearest neighbour, which needs no training (evaluate-clip-image);
# captioners trained on it too with make demo SPLIT_IMAGE_MODELS=blip (or "$(MODELS)")
SPLIT_IMAGE_MODELS ?=
# distinct prompts of the mini-DiffusionDB a fresh demo makes (default 5,000: 6,676 images); 7500 gives the seed report's 10k images
DEMO_PROMPTS ?=
PM := $(BIN)/papermill --cwd nbs
# each stage of the demo is timed (tools/stage.py: runs/timings/<stage>.json); the demo's clock starts when make does, install included
ifndef DEMO_T0
DEMO_T0 := $(shell date +%s.%N)
export DEMO_T0
endif
STAGE = $(BIN)/python tools/stage.py run
# retrieval from a prompt bank with no training run (split by prompt): the 10,282 real DiffusionDB prompts beside the clone, where they are
BANK ?= $(wildcard $(CURDIR)/../shared/data/diffusiondb_prompts.csv)
BANK_PARAM = $(if $(BANK),-p bank $(abspath $(BANK)))
# The data, the trainings and the evaluations run as parallel jobs of one thread each (JOBS at a time, LaTeX's install
# among them while it lasts): the tiny models' small kernels keep a second thread mostly waiting (two threads train
# BLIP only 1.3x faster than one), so two one-thread jobs side by side do nearly twice the work of one two-thread job;
# two jobs of two threads each would slow each other many times over.
JOBS ?= 3
LANE := env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PM) --no-progress-bar
# what the image split's captioners need trained first: its CLIP (clip-gpt2), BLIP's tagged tower (vit-gpt2)
IMAGE_TRAINS := $(sort $(SPLIT_IMAGE_MODELS) $(if $(filter clip-gpt2,$(SPLIT_IMAGE_MODELS)),clip) $(if $(filter vit-gpt2,$(SPLIT_IMAGE_MODELS)),blip))
TRAINS := $(addprefix train-,$(addsuffix -prompt,clip $(MODELS)) $(addsuffix -image,$(IMAGE_TRAINS)))
CAPTIONER_EVALS := $(MODELS:%=evaluate-%-prompt) $(SPLIT_IMAGE_MODELS:%=evaluate-%-image)
# the split's own systems in two jobs side by side: a prompt bank's retrieval (and the interrogator's tables), and the rest
SPLIT_EVALS := evaluate-clip-prompt $(if $(BANK),evaluate-clip-bank)
EVALS := $(SPLIT_EVALS) evaluate-clip-image $(CAPTIONER_EVALS)
split_of = $(lastword $(subst -, ,$1))
model_of = $(patsubst %-$(call split_of,$1),%,$1)
demo: $(STAMP)
	rm -rf runs/timings; mkdir -p runs
	$(MAKE) -j$(JOBS) latex-quietly train-clip-prompt train-blip-prompt $(SPLIT_EVALS) $(TRAINS) $(EVALS) analyse-prefix
	# the analysis, then the report in the same kernel where LaTeX is there (one process less on the demo's serial tail);
	# else the analysis alone and `make report`, which installs LaTeX or says what to install
	if command -v latexmk >/dev/null && command -v pdflatex >/dev/null; then \
	  $(STAGE) analyse-report -- $(PM) nbs/analyse.ipynb runs/analyse.ipynb -p report True; \
	else $(STAGE) analyse -- $(PM) nbs/analyse.ipynb runs/analyse.ipynb && $(MAKE) report; fi
	@$(BIN)/python tools/stage.py summary --t0 $(DEMO_T0)
	@echo "demo done: report/build/main.pdf (tables: results/, figures: figures/; each stage's time: runs/timings/summary.md)"

.PHONY: demo-data $(TRAINS) $(EVALS) latex-quietly analyse-prefix
demo-data:
	$(STAGE) data -- $(LANE) nbs/data.ipynb runs/data.ipynb $(if $(DEMO_PROMPTS),-p synth_prompts $(DEMO_PROMPTS))
# (the recipes name the model and split from the target: a target in two static pattern rules has the last one's stem)
$(TRAINS): train-%: demo-data
	$(STAGE) $@ -- $(LANE) nbs/train.ipynb runs/$@.ipynb -p model $(call model_of,$(@:train-%=%)) -p split_by $(call split_of,$@)
# the CLIP-prefix model's CLIP is its split's; ViT-GPT2 captions from BLIP's tagged tower
$(filter train-clip-gpt2-%,$(TRAINS)): train-clip-gpt2-%: train-clip-%
$(filter train-vit-gpt2-%,$(TRAINS)): train-vit-gpt2-%: train-blip-%
# every evaluation scores with the split by prompt's CLIP; the split's own systems (prior, retrieval, regression, the
# tagger, the oracle, ...) are scored once (evaluate-clip-prompt) and each captioner's evaluation of the split takes them
$(filter-out evaluate-clip-bank,$(EVALS)): evaluate-%: train-clip-prompt
	$(STAGE) $@ -- $(LANE) nbs/evaluate.ipynb runs/$@.ipynb -p model $(call model_of,$(@:evaluate-%=%)) -p split_by $(call split_of,$@) \
	  $(if $(filter prompt,$(call split_of,$@)),$(BANK_PARAM)) $(if $(filter evaluate-clip-prompt,$@),-p part $(if $(BANK),rest,all))
evaluate-clip-bank: train-clip-prompt
	$(STAGE) $@ -- $(LANE) nbs/evaluate.ipynb runs/$@.ipynb -p model clip -p split_by prompt $(BANK_PARAM) -p part bank
$(CAPTIONER_EVALS): evaluate-%: train-%
$(filter %-prompt,$(CAPTIONER_EVALS)): $(SPLIT_EVALS)
# the CLIP-GPT2 report's prefix study, as soon as its model is trained (the analysis at the end then reads it)
analyse-prefix: train-clip-gpt2-prompt
	$(STAGE) $@ -- $(LANE) nbs/analyse.ipynb runs/$@.ipynb -p prefix_only True

# the PDF from results/ and figures/; LaTeX is installed first where apt-get can (root), else we say what to install
report: $(STAMP) latex
	mkdir -p runs
	$(STAGE) report -- $(PM) nbs/report.ipynb runs/report.ipynb

LATEX_PKGS := latexmk texlive-latex-recommended texlive-pictures texlive-fonts-recommended texlive-latex-extra
latex:
	@if ! command -v latexmk >/dev/null || ! command -v pdflatex >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q --no-install-recommends $(LATEX_PKGS) || (apt-get update -q && apt-get install -y -q --no-install-recommends $(LATEX_PKGS))) >/dev/null; \
	  else echo "LaTeX is missing: install it with  sudo apt-get install --no-install-recommends $(LATEX_PKGS)  (macOS: MacTeX)"; exit 1; fi; fi
# the demo installs LaTeX while it trains (it waits on the network and the disk, not on the cores); where it cannot, `report` says what to install
latex-quietly:
	-@$(STAGE) latex -- $(MAKE) --no-print-directory latex >/dev/null 2>&1

test: $(STAMP) latex docs
	# two notebooks at a time, a thread each: two torch kernels on 2 cores with a thread per core each slow each other many times over
	cd nbs && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2
	$(BIN)/pytest -q --durations=20 tests

# the docs site (tools/docs.py): the README, the notebooks as committed, the demo's executed drivers (runs/, if any),
# benchmarks/ and each module's API, in build/docs/html/index.html; fails on a broken internal link or a missing page.
# Headless Chromium (Debian's chromium + chromium-driver) is for its browser test (tests/test_docs.py).
docs: $(STAMP) chromium
	$(BIN)/python tools/docs.py

CHROMIUM_PKGS := chromium chromium-driver
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q --no-install-recommends $(CHROMIUM_PKGS) || (apt-get update -q && apt-get install -y -q --no-install-recommends $(CHROMIUM_PKGS))) >/dev/null; \
	  else echo "headless Chromium is missing (the docs' browser test needs it): sudo apt-get install $(CHROMIUM_PKGS)"; exit 1; fi; fi

# re-execute the module notebooks in place with deterministic outputs (tools/run_notebooks.py), so they are read with
# their figures and tables; a second run leaves no diff. Commit the result.
notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py
	$(BIN)/nbdev_clean

# CI: the package must equal what the notebooks export, notebooks must be clean, README and GUIDE must match index and guide
check: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@changed=$$(git status --porcelain -- imgcap2text nbs); if [ -n "$$changed" ]; then \
	  echo "nbdev_export / nbdev_clean changed these files (export and clean, then commit):"; echo "$$changed"; exit 1; fi
	$(BIN)/python tools/readme.py --check
	$(BIN)/python tools/run_notebooks.py --check

# README.md and GUIDE.md from nbs/index.ipynb and nbs/guide.ipynb; the demo's results table (report/generated/summary.md, written by make report) is kept in benchmarks/
# (`make readme DEMO_PROMPTS=7500` in the clone that ran `make demo DEMO_PROMPTS=7500`: as demo_results_7500.md, leaderboard_7500.md)
SIZE_SUFFIX = $(if $(DEMO_PROMPTS),_$(DEMO_PROMPTS))
readme:
	if [ -f report/generated/summary.md ]; then cp report/generated/summary.md benchmarks/demo_results$(SIZE_SUFFIX).md; fi
	if [ -f report/generated/leaderboard/leaderboard.md ]; then cp report/generated/leaderboard/leaderboard.md benchmarks/leaderboard$(SIZE_SUFFIX).md; fi
	python3 tools/readme.py

# wheels of what the GPU machine lacks (it has torch and transformers, no network), for tools/gpu_check.sh to install
gpu-wheels: $(STAMP)
	$(BIN)/pip download -q -d wheels datasets fastcore accelerate pandas tabulate faiss-cpu diffusers
	$(BIN)/pip download -q --no-deps -d wheels clip-interrogator==0.6.0

# the README's picture of the app on the demo's trained runs (after make demo), in headless Chromium
screenshot: $(STAMP) chromium
	$(BIN)/python tools/app_screenshot.py

# speed and memory ratios (tools/benchmarks.py): a printed table, benchmarks/results.{json,md}, then the README that shows it
bench: $(STAMP)
	$(BIN)/python tools/benchmarks.py
	$(BIN)/python tools/readme.py

# how much data fine-tuning needs: BLIP on 250 ... 7,500 distinct prompts (tools/learning_curve.py, two points at a time);
# benchmarks/learning_curve.{json,md} are kept in git, and the report draws the figure from them
learning-curve: $(STAMP)
	$(BIN)/python tools/learning_curve.py --jobs 2

clean:
	rm -rf runs results figures/*.pdf figures/*.png figures/data report/build report/generated
