# Two commands on a fresh machine:
#   make demo   set up .venv and run the whole method on the embedded digits world
#   make test   set up .venv (and .venv-mmcls, the OpenMMLab conversion's reference) and run the test suite
#   make lint   the lint and format checks CI runs (ruff, snakefmt, snakemake --lint of both configs)
#   make seeds  the digits world with seeds 0, 1 and 2, and the claims summarised over them
#   make scenes the segmentation task on the embedded digit-scenes world, in runs/digit_scenes/
#   make gpu-check  on a GPU machine (~5 min plus compilation): the speed benchmark, then the CUDA tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: demo seeds scenes test lint setup lock clean gpu-check openmmlab-reference

setup: $(STAMP)

# Exact versions from the lock, so a fresh clone reproduces the README's figures.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(LOCK) -e ".[test]"
	touch $(STAMP)

# Re-resolve the dependencies in a fresh environment and write their exact versions to the lock.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -e ".[test]"
	head -4 $(LOCK) > $(LOCK).new
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^sda-pipeline' >> $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores all --configfile presets/digits.yaml

# the digits world with seeds 0, 1, 2 and the summary of the paper's claims over them (README)
seeds: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python tools/seeds.py --configfile presets/digits.yaml --seeds 0 1 2

# its own folder: the worlds' outputs share names (a run in a folder of another world's is refused)
scenes: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores all --snakefile Snakefile --directory runs/digit_scenes \
		--configfile presets/digit_scenes.yaml

# The OpenMMLab conversion's reference: mmcls 0.25 itself, in its own environment (tools/openmmlab_reference.py),
# writes the five paper architectures' files and logits; tests/test_openmmlab_reference.py compares timm's.
OPENMMLAB_VENV := .venv-mmcls
OPENMMLAB_REFERENCE := .openmmlab-reference

# It reads .venv's torch and torchvision (the same pins) through a .pth file instead of a second copy of
# their 5.5 GB: pip sees them as installed and puts only what differs in .venv-mmcls, ahead of .venv.
SITE_PACKAGES := -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'

$(OPENMMLAB_VENV)/.installed: tools/openmmlab-reference.txt $(STAMP)
	test -x $(OPENMMLAB_VENV)/bin/python || $(PYTHON) -m venv $(OPENMMLAB_VENV)
	$(OPENMMLAB_VENV)/bin/python -m pip install "setuptools==69.5.1" "wheel==0.45.1"
	$(BIN)/python $(SITE_PACKAGES) > "$$($(OPENMMLAB_VENV)/bin/python $(SITE_PACKAGES))/sda-pipeline-venv.pth"
	MMCV_WITH_OPS=0 $(OPENMMLAB_VENV)/bin/python -m pip install --no-build-isolation -r tools/openmmlab-reference.txt
	touch $@

$(OPENMMLAB_REFERENCE)/reference.pt: $(OPENMMLAB_VENV)/.installed tools/openmmlab_reference.py
	$(OPENMMLAB_VENV)/bin/python tools/openmmlab_reference.py $(OPENMMLAB_REFERENCE)

openmmlab-reference: $(OPENMMLAB_REFERENCE)/reference.pt

# Two pytest workers (pytest-xdist; each test file stays on one worker, tests/conftest.py): most tests run on
# one core, and the SLURM test mostly waits for the plugin's polling. TEST_WORKERS=0 runs them in-process.
TEST_WORKERS ?= 2
test: $(STAMP) $(OPENMMLAB_REFERENCE)/reference.pt
	SDA_OPENMMLAB_REFERENCE=$(OPENMMLAB_REFERENCE) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) tests

# one prepared command for a lent GPU machine (~5 min plus the two compiled rows' compilation): the
# benchmark's rows at the real ADM-256 and DiT-XL/2 (to benchmarks/results/ with the date and
# hardware), then the CUDA tests (pytest -m gpu).
# GPU_PYTHON: an interpreter with this package and a CUDA torch, where .venv cannot be built offline.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	HF_HUB_OFFLINE=1 $(GPU_PYTHON) benchmarks/diffusion_step.py --batch 16 --steps 3 --repeats 2
	HF_HUB_OFFLINE=1 $(GPU_PYTHON) -m pytest -m gpu -v tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/python tools/lint_workflow.py

clean:
	rm -rf results runs .snakemake
