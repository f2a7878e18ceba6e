#!/usr/bin/env bash
# The FER+ default-model recipe on one borrowed GPU, in one call of at most 10 minutes:
# three FER+ teachers (configs/ferplus-teacher.yaml), then the shipped vgg_fer_small distilled
# from them (configs/ferplus-student.yaml). The GPU machine takes at most 64 MiB of files with the
# checkout, so it trains on the packed FER+ train folder (tools/pack_ferplus.py); validation is
# carved from it there (data.val_fraction), and FER2013Valid/Test are measured here afterwards.
#
# Here, once:   python tools/pack_ferplus.py PATH/TO/ferplus-images.zip .data/ferplus-train.zip --splits FER2013Train
#               echo /.data/ >> .git/info/exclude
# Device call:  run(command="bash tools/device_ferplus.sh", carry=[".data/ferplus-train.zip"], timeout_s=590)
# Back here:    tar xzf <files_at>/runs.tar.gz   (runs/ferplus-teacher-s*/ without weights, runs/ferplus-student/)
#               emolens evaluate runs/ferplus-student --data PATH/TO/ferplus-images.zip --split val
#
# The figures it needs were measured on an H100 (docs/experiments.md: 2.5 s per epoch for the
# full-width VGG at batch 128, 3.5 s for the distilled student); the epoch counts below keep
# the call inside its limit. Each stage is archived as soon as it ends, so a call cut off at
# its limit still brings back what finished.
set -euo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=src
DATA=${DATA:-.data/ferplus-train.zip}
SEEDS=${SEEDS:-0 1 2}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-30}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-60}
EXTRA=${EXTRA:-}  # more --set options for every run (the CPU smoke test shrinks the data with it)
DEST=${OUT:-runs/device-out}
mkdir -p "$DEST"
# JPEG in training as well (aug.jpeg_prob): on the CPU it lifted JPEG q15 by 3.0 points of FER+
# validation for 0.1 of clean (docs/experiments.md, "Taught from the whole face").
COMMON="--set run.progress=false --set data.val_fraction=0.1 --set aug.jpeg_prob=0.25 $EXTRA"
PY=${PY:-python3}

archive() {  # the named run folders without checkpoints; teachers' weights (20 MB each) stay behind
    tar czf "$DEST/runs.tar.gz" --exclude='checkpoints' --exclude='ferplus-teacher-*/*.safetensors' "$@"
}

{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; $PY -c "import torch; print('torch', torch.__version__)"; } \
    2>&1 | tee "$DEST/log.txt"
teachers=()
for s in $SEEDS; do
    name=ferplus-teacher-s$s
    $PY -m emolens train configs/ferplus-teacher.yaml --data "$DATA" --set run.seed="$s" --set run.name="$name" \
        --set schedule.epochs="$TEACHER_EPOCHS" $COMMON 2>&1 | tee -a "$DEST/log.txt"
    teachers+=("runs/$name")
    archive "${teachers[@]}"
done
list=$(IFS=,; echo "${teachers[*]}")
$PY -m emolens train configs/ferplus-student.yaml --data "$DATA" --set "distill.teachers=[$list]" \
    --set schedule.epochs="$STUDENT_EPOCHS" $COMMON 2>&1 | tee -a "$DEST/log.txt"
archive "${teachers[@]}" runs/ferplus-student
echo "done: $DEST/runs.tar.gz" | tee -a "$DEST/log.txt"
