"""Test-time augmentation, face by face: does flipping (or ten crops) fix more faces than it breaks?

    python benchmarks/tta.py --data ../shared/datasets/ferplus/ferplus-images.zip --split val
    python benchmarks/tta.py --model runs/exp/best.safetensors --data archive.zip --tta flip tencrop

Accuracy and macro-F1 move by fractions of a point between TTA settings, within the spread one
split's sampling gives. Paired per face, the question is sharper: of the faces on which the two
settings disagree about being right, how many does the augmentation fix and how many does it
break, and how likely is a split that uneven by chance (the exact McNemar test: a two-sided
binomial test of the fixes among fixes plus breaks at one half). Use a validation split: the
shipped path's choice is made there, never on test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "ferplus" / "ferplus-images.zip"


def paired(y, base, other) -> dict[str, float]:
    """Faces `other` gets right that `base` gets wrong (fixed), the reverse (broken), and the
    exact McNemar p-value of that split."""
    from scipy.stats import binomtest

    right_base, right_other = base == y, other == y
    fixed, broken = int((~right_base & right_other).sum()), int((right_base & ~right_other).sum())
    p = binomtest(fixed, fixed + broken, 0.5).pvalue if fixed + broken else 1.0
    return {"fixed": fixed, "broken": broken, "mcnemar_p": float(p)}


def main() -> None:
    from emolens.evaluation import macro_f1_score, split_labels_and_logits

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model file or run folder (default: the shipped model)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="any dataset `emolens evaluate` reads")
    ap.add_argument("--split", default="val")
    ap.add_argument("--tta", nargs="+", default=["flip", "tencrop"], help="settings to compare with none")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    y, logits, labels = split_labels_and_logits(args.model, args.data, split=args.split, tta="none")
    base = logits.argmax(1)
    rows = {"none": {"accuracy": float((base == y).mean()), "macro_f1": macro_f1_score(y, base, len(labels))}}
    for tta in args.tta:
        pred = split_labels_and_logits(args.model, args.data, split=args.split, tta=tta)[1].argmax(1)
        rows[tta] = {"accuracy": float((pred == y).mean()), "macro_f1": macro_f1_score(y, pred, len(labels)), **paired(y, base, pred)}
    print(f"{args.split} of {args.data.name}, {len(y)} faces")
    for tta, r in rows.items():
        vs = "" if tta == "none" else f"   against none: fixes {r['fixed']}, breaks {r['broken']}, McNemar p = {r['mcnemar_p']:.3f}"
        print(f"{tta:>8}: accuracy {100 * r['accuracy']:.2f}%  macro-F1 {100 * r['macro_f1']:.2f}%{vs}")
    if args.json:
        args.json.write_text(json.dumps({"split": args.split, "data": str(args.data), "faces": len(y), "tta": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
