"""Faces handed over already cropped, framed otherwise than FER-2013: `predict_crops` as they
come (`reframe=False`) against found again and cut as photos' faces are (`reframe=True`, the default).

    python benchmarks/crops.py --data ../shared/datasets/ferplus/ferplus-images.zip
    python benchmarks/crops.py --data ... --split val --side 112 --limit 1200

Other datasets and other tools crop faces their own way: tighter (RAF-DB's aligned faces fill the
square), looser (AffectNet's boxes keep hair and background), off-centre (another detector's
box), tilted. Each test face (FER+ majority labels) is cut each such way from its FER-2013 frame
(edges continued where the cut leaves it), resized to `--side` pixels like a dataset's crops, and
given to `EmotionRecognizer.predict_crops` both ways. Per framing: accuracy as the crop comes, accuracy
reframed, the share of crops in which the detector found the face (the others are read as they
come either way), and the milliseconds per crop of each call (all crops in one call, as a batch).
Choose on `--split val`, never on test.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

# name -> (side of the cut as a share of the FER frame, shift right as a share, clockwise turn in degrees)
FRAMINGS = {
    "FER-2013's own frame": (1.0, 0.0, 0.0),
    "tight (85% of the frame)": (0.85, 0.0, 0.0),
    "tight (70%)": (0.7, 0.0, 0.0),
    "loose (130%)": (1.3, 0.0, 0.0),
    "off-centre (15% right)": (1.0, 0.15, 0.0),
    "tilted 20 degrees": (1.0, 0.0, 20.0),
}


def cut(face: np.ndarray, share: float, shift: float, clockwise: float, side: int) -> np.ndarray:
    """A square cut of `share` times the FER frame about its centre moved right by `shift` of
    the frame, turned clockwise by `clockwise` degrees, as a (side, side) uint8 crop."""
    import cv2

    from emolens.preprocessing import crop_face

    big = 4 * face.shape[0]  # cut from an enlarged copy, so that small shares keep their detail
    up = cv2.resize(face, (big, big), interpolation=cv2.INTER_CUBIC)
    box = (big * (0.5 + shift - share / 2), big * (0.5 - share / 2), big * share, big * share)
    return crop_face(up, box, 0.0, side, roll=clockwise)


def main() -> None:
    from emolens.data import load_dataset
    from emolens.pipeline import EmotionRecognizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="FER+ images (FER+ majority labels) or FER-2013 in any form emolens reads")
    ap.add_argument("--split", default="test", choices=["val", "test"], help="faces to score (choose settings on val)")
    ap.add_argument("--model", default=None, help="model file or shipped name (default: the shipped one)")
    ap.add_argument("--detector", default=None, help="detector that finds the faces again (default: the pipeline's)")
    ap.add_argument("--side", type=int, default=112, help="side of the crops handed over, in pixels")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N faces of the split (0 = all)")
    args = ap.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(args.data, progress=False).subset(args.split)
    faces, labels = (ds.images[: args.limit], ds.labels[: args.limit]) if args.limit else (ds.images, ds.labels)
    rec = EmotionRecognizer(args.model, **({"detector": args.detector} if args.detector else {}))
    print(f"Data: {args.data}, split {args.split} ({len(faces)} faces), crops of {args.side} px; {rec!r}\n")
    print("| crops framed | as they come (`reframe=False`) | reframed (default) | gain | face found in | ms per crop (as they come / reframed) |")
    print("|---|---|---|---|---|---|")
    for name, (share, shift, turn) in FRAMINGS.items():
        crops = [cut(f, share, shift, turn if i % 2 == 0 else -turn, args.side) for i, f in enumerate(faces)]
        scores, ms = {}, {}
        for reframe in (False, True):
            start = time.perf_counter()
            results = rec.predict_crops(crops, reframe=reframe)
            ms[reframe] = 1000 * (time.perf_counter() - start) / len(crops)
            scores[reframe] = float(np.mean([rec.labels.index(r.label) == y for r, y in zip(results, labels, strict=True)]))
        found = float(np.mean([r.detection_confidence is not None for r in results]))
        print(f"| {name} | {100 * scores[False]:.2f}% | {100 * scores[True]:.2f}% | {100 * (scores[True] - scores[False]):+.2f} | "
              f"{100 * found:.1f}% | {ms[False]:.2f} / {ms[True]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
