# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each creates .venv on first use; later runs reuse it.
PY ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint clean default-model

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

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
