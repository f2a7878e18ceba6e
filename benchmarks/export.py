"""Exported models against PyTorch: ONNX and TFLite, fp32 and int8 (static and dynamic).

    python benchmarks/export.py --fer2013 ../shared/datasets/fer2013/archive.zip [--model M] [--json out.json]

Every file is made by `emolens.export.export_model`, as `emolens export` makes it (static int8
calibrated on 512 training faces of --fer2013, through the one data path). For each: its size,
FER-2013 PrivateTest accuracy, agreement with PyTorch (same top label, largest score
difference) on PrivateTest and on the real face photos scikit-image ships (LFW), and crop
throughput at batch 1 and 64 on one thread (PyTorch too, as the reference). TFLite rows need the
`tflite` extra (its own environment: `make venv-tflite`, then run this with .venv-tflite/bin/python);
without it they are left out and said so. Speed depends on the machine and its load: the load
average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import throughput


def _variants(have_tflite: bool) -> list[tuple[str, str, dict]]:
    rows = [
        ("onnx fp32", "onnx", {}),
        ("onnx int8 static", "onnx", {"int8": True, "calibrate": True}),
        ("onnx int8 dynamic", "onnx", {"int8": True, "dynamic": True}),
    ]
    if have_tflite:
        rows += [
            ("tflite fp32", "tflite", {}),
            ("tflite int8 static", "tflite", {"int8": True, "calibrate": True}),
            ("tflite int8 dynamic", "tflite", {"int8": True, "dynamic": True}),
        ]
    return rows


def _photo_faces() -> np.ndarray:
    from skimage import data

    from emolens.preprocessing import PreprocessConfig, prepare_face

    return np.stack([prepare_face(x, PreprocessConfig()) for x in data.lfw_subset()[:100]])


def _compare(backend, reference: dict[str, np.ndarray], sets: dict[str, np.ndarray], labels: np.ndarray, seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, faces in sets.items():
        p = backend.predict_proba(faces)
        out[f"{name}_same_top_label"] = round(float((p.argmax(1) == reference[name].argmax(1)).mean()), 4)
        out[f"{name}_max_score_diff"] = float(np.abs(p - reference[name]).max())
        if name == "private_test":
            out["private_test_accuracy"] = round(100 * float((p.argmax(1) == labels).mean()), 2)
    for batch in (1, 64):
        out[f"faces_per_s_batch{batch}"] = round(throughput(backend, sets["private_test"], batch, seconds), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer2013", required=True, help="FER-2013 archive: PrivateTest to score, training faces to calibrate on")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument("--limit", type=int, help="score only the first N PrivateTest faces (a quick check, not the figures)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per throughput figure")
    args = parser.parse_args()

    import torch

    from emolens.data import load_dataset
    from emolens.export import export_model
    from emolens.models import load_model, read_model_config, resolve_model_path
    from emolens.runtime import TorchBackend, create_backend

    torch.set_num_threads(1)
    have_tflite = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))
    model = resolve_model_path(args.model)
    cfg = read_model_config(model)
    test = load_dataset(args.fer2013, image_size=cfg.preprocess.image_size, progress=False).subset("test")
    if args.limit:
        test = test.subset(np.arange(min(args.limit, len(test))))
    sets = {"private_test": test.images, "photos": _photo_faces()}
    torch_backend = TorchBackend(load_model(model))
    reference = {k: torch_backend.predict_proba(v) for k, v in sets.items()}
    report: dict[str, object] = {"model": str(model), "cpu_cores": os.cpu_count(), "load_average_1min_start": round(os.getloadavg()[0], 2)}
    print(f"model {model}; {len(test)} PrivateTest faces, {len(sets['photos'])} LFW photos; load average {os.getloadavg()[0]:.2f}")
    rows = {"pytorch fp32": {"private_test_accuracy": round(100 * float((reference["private_test"].argmax(1) == test.labels).mean()), 2),
                             **{f"faces_per_s_batch{b}": round(throughput(torch_backend, test.images, b, args.seconds), 1) for b in (1, 64)}}}
    tmp = Path(tempfile.mkdtemp(prefix="emolens-export-"))
    for name, fmt, opts in _variants(have_tflite):
        t0 = time.perf_counter()
        calibration = args.fer2013 if opts.get("calibrate") else None
        done = export_model(model, tmp / f"{name.replace(' ', '-')}.{fmt}", format=fmt, int8=opts.get("int8", False),
                            dynamic=opts.get("dynamic", False), calibration=calibration)
        seconds = time.perf_counter() - t0
        rows[name] = {"quantization": done.quantization, "file_mb": round(done.path.stat().st_size / 1e6, 2), "export_s": round(seconds, 1),
                      **_compare(create_backend(done.path, threads=1), reference, sets, test.labels, args.seconds)}
    if not have_tflite:
        print("tflite: the extra is not installed here, rows left out (make venv-tflite; run with .venv-tflite/bin/python)")
    print(f"\n{'':22} {'MB':>5} {'PrivateTest':>11} {'same top (test/photos)':>23} {'max |dscore|':>13} {'faces/s b1':>10} {'b64':>8}")
    for name, r in rows.items():
        same = f"{r.get('private_test_same_top_label', 1):.4f} / {r.get('photos_same_top_label', 1):.4f}" if "quantization" in r else "reference"
        diff = max(r.get("private_test_max_score_diff", 0), r.get("photos_max_score_diff", 0))
        print(f"{name:22} {r.get('file_mb', 0):5.2f} {r['private_test_accuracy']:10.2f}% {same:>23} {diff:13.2e} "
              f"{r['faces_per_s_batch1']:10.1f} {r['faces_per_s_batch64']:8.1f}")
    report["rows"] = rows
    report["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
