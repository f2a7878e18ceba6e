"""Score several models, and the average of their probabilities, on a dataset's val and test splits.

    python benchmarks/ensemble.py --data ../shared/datasets/fer2013/archive.zip \
        --models runs/teacher-s0 runs/teacher-s1 runs/teacher-s2
    python benchmarks/ensemble.py --data ../shared/datasets/ferplus/ferplus-images.zip \
        --models runs/ferplus-teacher-s0 runs/ferplus-teacher-s1 src/emolens/weights/default.safetensors

On FER-2013 val and test are PublicTest and PrivateTest; on FER+ they are the same faces
(FER2013Valid, FER2013Test) scored against the crowd's majority.

Used for the teachers of the default model (docs/experiments.md): how good is what the
student is distilled from, alone and together. Prints a Markdown table; `--json` also writes
the figures. Each model's own temperature is applied before averaging.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    from emolens.data import load_dataset
    from emolens.evaluation.metrics import accuracy_and_macro_f1
    from emolens.inference import predict_proba
    from emolens.models import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="model files or run folders")
    ap.add_argument("--data", required=True, help="FER-2013 in any form emolens reads")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    models = [load_model(m) for m in args.models]
    size = {m.emolens_config.preprocess.image_size for m in models}
    if len(size) != 1:
        raise SystemExit(f"the models read different image sizes {sorted(size)}; an ensemble needs one")
    ds = load_dataset(args.data, image_size=size.pop(), progress=False)
    labels = "FER+ majority" if ds.soft_labels is not None else "the dataset's labels"
    splits = {"val": ds.subset("val"), "test": ds.subset("test")}
    rows: dict[str, dict[str, float]] = {}
    probs: dict[str, list[np.ndarray]] = {name: [] for name in splits}
    for spec, model in zip(args.models, models, strict=True):
        rows[spec] = {}
        for name, part in splits.items():
            p = predict_proba(model, part.images)
            probs[name].append(p)
            rows[spec] |= dict(zip((f"{name} acc", f"{name} macro-F1"), accuracy_and_macro_f1(part.labels, p.argmax(1)), strict=True))
    mean = f"mean of {len(models)}"
    rows[mean] = {}
    for name, part in splits.items():
        pred = np.mean(probs[name], axis=0).argmax(1)
        rows[mean] |= dict(zip((f"{name} acc", f"{name} macro-F1"), accuracy_and_macro_f1(part.labels, pred), strict=True))

    cols = [f"{s} {m}" for s in splits for m in ("acc", "macro-F1")]
    print(f"{args.data}, scored against {labels}\n")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for spec, r in rows.items():
        print(f"| {spec} | " + " | ".join(f"{100 * r[c]:.2f}%" for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
