"""tools/device_ferplus.sh, the GPU recipe of the FER+ default model, runs end to end.

A GPU session has about 15 minutes in all, so a recipe that breaks on the machine wastes the
session. This runs the same script on the CPU with the synthetic set, two teachers and one epoch
each, in a scratch folder (its runs/ must not meet the checkout's), and checks what comes back:
the archive the device call returns, the student's weights and the teachers it learnt from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from emolens.models import load_model, read_model_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_recipe_runs_on_the_cpu_and_archives_the_student(tmp_path: Path) -> None:
    for part in ("src", "configs", "tools"):
        (tmp_path / part).symlink_to(ROOT / part)
    out = tmp_path / "out"
    env = {
        **os.environ, "DATA": "synthetic", "SEEDS": "0 1", "TEACHER_EPOCHS": "1", "STUDENT_EPOCHS": "1", "PY": sys.executable,
        "OUT": str(out), "OMP_NUM_THREADS": "1", "EXTRA": "--set data.synthetic_per_class=20 --set run.plots=false",
    }
    done = subprocess.run(["bash", "tools/device_ferplus.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"done: {out}/runs.tar.gz" in done.stdout

    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    assert "runs/ferplus-student/best.safetensors" in names and "runs/ferplus-teacher-s1/history.csv" in names
    assert not any("checkpoints" in n or (n.startswith("runs/ferplus-teacher-") and n.endswith(".safetensors")) for n in names)

    student = tmp_path / "runs" / "ferplus-student" / "best.safetensors"
    load_model(student)  # loads and validates, as `emolens evaluate` will back here
    teachers = read_model_config(student).training["distill"]["teachers"]
    assert [t["name"] for t in teachers] == ["ferplus-teacher-s0", "ferplus-teacher-s1"]
