"""Where each detector's box falls on FER-framed faces, and what the measured crop is worth.

    python benchmarks/framing.py --data ../shared/datasets/ferplus/ferplus-images.zip --save framing.json

1. Measure (train faces only): each training face is shown to the detector at 160 px in a canvas
   that continues its edges (`emolens.faces.framing`); the median of where the box falls
   relative to the face's own FER frame is that detector's `Framing` (scale, dx, dy).
2. Score (test faces): the same placement for every test face; the detector's box is cut
   three ways and classified by the model: the box plus the margin of the model file
   (`face_margin`, the old rule), the measured framing, and the FER frame itself (the ceiling).

`--save` writes the measured geometry as JSON for `tools/ship_model.py --framing`, which
records it in the model's config so that every photo, video, webcam and HTTP crop uses it.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np


def score_crops(detector, model, faces: np.ndarray, labels: np.ndarray, framings: dict) -> tuple[dict[str, float], int]:
    """Accuracy of each crop rule on the faces the detector finds; and how many it found."""
    from emolens.faces.framing import FACE_PX, locate_face
    from emolens.inference import predict_proba
    from emolens.preprocessing import crop_face

    crops: dict[str, list[np.ndarray]] = {name: [] for name in framings}
    kept = []
    size = faces.shape[1]
    for i, face in enumerate(faces):
        hit = locate_face(detector, face)
        if hit is None:
            continue
        canvas, box, _ = hit
        pad = (canvas.shape[0] - FACE_PX) // 2
        kept.append(i)
        for name, framing in framings.items():
            # framing None: the face's own FER frame, what the network was trained on.
            crops[name].append(crop_face(canvas, (pad, pad, FACE_PX, FACE_PX), 0.0, size) if framing is None else crop_face(canvas, box, framing, size))
    y = labels[kept]
    return {name: float((predict_proba(model, np.stack(c)).argmax(1) == y).mean()) for name, c in crops.items()}, len(kept)


def main() -> None:
    from emolens.data import load_dataset
    from emolens.faces import create_detector
    from emolens.faces.framing import measure_framing
    from emolens.models import load_model, resolve_model_path
    from emolens.preprocessing import Framing

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="FER+ images or FER-2013 in any form emolens reads")
    ap.add_argument("--model", default=None, help="model to score the crops with (default: the shipped one)")
    ap.add_argument("--detectors", nargs="+", default=["haar"])
    ap.add_argument("--train-limit", type=int, default=1500, help="training faces to measure on")
    ap.add_argument("--test-limit", type=int, default=0, help="test faces to score (0 = all)")
    ap.add_argument("--save", type=Path, help="write {detector: [scale, dx, dy]} here")
    args = ap.parse_args()

    model = load_model(resolve_model_path(args.model))
    margin = model.emolens_config.preprocess.face_margin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(args.data, progress=False)
    train, test = ds.subset("train"), ds.subset("test")
    test_faces, test_labels = (test.images[: args.test_limit], test.labels[: args.test_limit]) if args.test_limit else (test.images, test.labels)
    measured, rows = {}, []
    for name in args.detectors:
        detector = create_detector(name, min_face_size=40)
        m = measure_framing(detector, train.images, limit=args.train_limit)
        measured[name] = [round(m.framing.scale, 4), round(m.framing.dx, 4), round(m.framing.dy, 4)]
        rules = {f"box + margin {margin}": Framing(scale=1 + 2 * margin), "measured framing": m.framing, "FER frame (ceiling)": None}
        acc, found = score_crops(detector, model, test_faces, test_labels, rules)
        rows.append((name, m, acc, found))
    print(f"Model: {resolve_model_path(args.model)}; data: {args.data}\n")
    print("| detector | measured scale, dx, dy (IQR) | train faces found | test faces found | " + " | ".join(rows[0][2]) + " |")
    print("|---" * (4 + len(rows[0][2])) + "|")
    for name, m, acc, found in rows:
        f = m.framing
        geo = f"{f.scale:.3f}, {f.dx:+.3f}, {f.dy:+.3f} ({', '.join(f'{v:.3f}' for v in m.spread)})"
        print(f"| {name} | {geo} | {m.found}/{m.tried} | {found}/{len(test_faces)} | " + " | ".join(f"{100 * v:.2f}%" for v in acc.values()) + " |")
    if args.save:
        args.save.write_text(json.dumps(measured, indent=2) + "\n")
        print(f"\nwrote {args.save}")


if __name__ == "__main__":
    main()
