# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each creates .venv on first use; later runs reuse it.
PY ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint clean default-model test-extras

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m emolens.demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/pytest -q

# The shipped default model, end to end (about 2.5 hours on a 2-core CPU): two training stages,
# per-class offsets and temperature fitted on validation, install, model card.
# make default-model DATA=path/to/fer2013/archive.zip [VERSION=0.2.0]
VERSION ?= 0.2.0
default-model: $(STAMP)
	@test -n "$(DATA)" || { echo "usage: make default-model DATA=path/to/fer2013/archive.zip"; exit 2; }
	$(BIN)/emolens train configs/default.yaml --data "$(DATA)"
	$(BIN)/emolens train configs/default-stage2.yaml --data "$(DATA)"
	$(BIN)/emolens evaluate runs/default-v2 --data "$(DATA)" --split val --calibrate --class-bias --min-recall 0.47 --out runs/default-v2-cal
	$(BIN)/python tools/ship_model.py runs/default-v2-cal/model-calibrated.safetensors --version $(VERSION) --replace
	$(BIN)/python benchmarks/accuracy.py --data "$(DATA)"

# timm and Ultralytics need torchvision, which does not import beside the CPU torch of .venv:
# a second environment (torch 2.14.1 + torchvision 0.29.1, about 6.6 GB and 20 min to install).
# Not part of `make test` for that reason; run it where the extras matter.
VISION := .venv-vision
$(VISION)/.installed: pyproject.toml
	$(PY) -m venv $(VISION)
	$(VISION)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VISION)/bin/pip install -q -e ".[dev,timm,ultralytics]" "opencv-python>=4.8,<5" torch==2.14.1 torchvision==0.29.1
	# Ultralytics' opencv-python and emolens's headless build share the cv2 folder: reinstall ours last.
	$(VISION)/bin/pip install -q --force-reinstall --no-deps "opencv-python-headless>=4.8,<5"
	touch $@

test-extras: $(VISION)/.installed
	OMP_NUM_THREADS=1 $(VISION)/bin/python -m pytest -q tests/test_timm_adapter.py tests/test_yolo_export.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
