"""Faces handed over already cropped, framed otherwise than FER-2013: `predict_crops` as they
come (`reframe=False`) against found again and cut as photos' faces are (`reframe=True`, the default);
and the same crops as photos (`predict`, what `emolens predict crops/` does) with and without the
close-up search (`EmotionRecognizer(close_up=...)`).

    python benchmarks/crops.py --data ../shared/datasets/ferplus/ferplus-images.zip
    python benchmarks/crops.py --data ... --split val --side 112 --limit 1200
    python benchmarks/crops.py --data ... --photo-path --sides 64 112 448 [--widerface ../shared/datasets/widerface-val5]
    python benchmarks/crops.py --data ... --photo-path --split val --limit 600 --close-up-px 128 --close-up-border 0.5

Other datasets and other tools crop faces their own way: tighter (RAF-DB's aligned faces fill the
square), looser (AffectNet's boxes keep hair and background), off-centre (another detector's
box), tilted. Each test face (FER+ majority labels) is cut each such way from its FER-2013 frame
(edges continued where the cut leaves it), resized to `--side` pixels like a dataset's crops, and
given to `EmotionRecognizer.predict_crops` both ways. Per framing: accuracy as the crop comes, accuracy
reframed, the share of crops in which the detector found the face (the others are read as they
come either way), and the milliseconds per crop of each call (all crops in one call, as a batch).
Choose on `--split val`, never on test.

`--photo-path` gives each crop to `predict` instead, as a photo: the detector must find the face
(a crop in which it finds none gets no label), with the close-up search off and on (a photo in
which nothing is found is searched once more, shrunk or enlarged and set on a border:
`emolens.faces.base.find_close_up`). Per framing and side: the share of crops with a face found,
accuracy counting a crop without one as wrong, and ms per crop. `--widerface` adds the cost of
the search in face-free pictures: one square piece of each WIDER FACE photo (64-320 px) that
overlaps no labelled face, and the share of them in which `predict` reports a face either way.
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
import zipfile
from pathlib import Path

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


def photo_path(rec, faces: list, labels: list, framing: tuple[float, float, float], side: int) -> dict[bool, tuple[float, float, float]]:
    """close_up -> (share of crops with a face found, accuracy with a miss counted wrong, ms per
    crop), each crop given to `predict` as a photo (the largest face read)."""
    share, shift, turn = framing
    crops = [cut(f, share, shift, turn if i % 2 == 0 else -turn, side) for i, f in enumerate(faces)]
    out = {}
    for close_up in (False, True):
        rec.close_up = close_up
        start, found, right = time.perf_counter(), 0, 0
        for crop, label in zip(crops, labels, strict=True):
            result = rec.predict(crop)
            found += bool(result.faces)
            right += bool(result.faces) and rec.labels.index(result.faces[0].label) == label
        out[close_up] = (found / len(crops), right / len(crops), 1000 * (time.perf_counter() - start) / len(crops))
    return out


def face_free_pieces(folder: Path, seed: int = 0) -> list[np.ndarray]:
    """One square piece (64-320 px) of each WIDER FACE photo that keeps 10 px off every labelled face."""
    import cv2

    from emolens.faces.widerface import read_ground_truth

    rng = random.Random(seed)
    pieces = []
    with zipfile.ZipFile(folder / "widerface-val5.zip") as zf:
        for im in read_ground_truth(folder / "wider_face_val5_bbx_gt.txt"):
            photo = cv2.imdecode(np.frombuffer(zf.read(f"WIDER_val/images/{im.path}"), np.uint8), cv2.IMREAD_COLOR)
            H, W = photo.shape[:2]
            for _ in range(30):  # tries: a crowd leaves little room
                s = rng.choice([64, 112, 160, 224, 320])
                if s >= min(H, W):
                    continue
                x, y = rng.randrange(W - s), rng.randrange(H - s)
                if not any(x < fx + fw + 10 and fx - 10 < x + s and y < fy + fh + 10 and fy - 10 < y + s for fx, fy, fw, fh in (f.box for f in im.faces)):
                    pieces.append(photo[y:y + s, x:x + s])
                    break
    return pieces


def print_photo_path(rec, faces: list, labels: list, sides: list[int], widerface: Path | None) -> None:
    print("| crops framed | side | face found: close-up off / on | accuracy (no face = wrong): off / on | gain | ms per crop: off / on |")
    print("|---|---|---|---|---|---|")
    cells = []
    for side in sides:
        for name, framing in FRAMINGS.items():
            r = photo_path(rec, faces, labels, framing, side)
            cells.append(r)
            print(f"| {name} | {side} | {100 * r[False][0]:.1f}% / {100 * r[True][0]:.1f}% | {100 * r[False][1]:.2f}% / {100 * r[True][1]:.2f}% | "
                  f"{100 * (r[True][1] - r[False][1]):+.2f} | {r[False][2]:.1f} / {r[True][2]:.1f} |", flush=True)
    mean = {on: np.mean([c[on][:2] for c in cells], axis=0) for on in (False, True)}
    print(f"\nmean over the table: face found {100 * mean[False][0]:.2f}% / {100 * mean[True][0]:.2f}%, "
          f"accuracy {100 * mean[False][1]:.2f}% / {100 * mean[True][1]:.2f}% (close-up off / on)")
    if widerface is not None:
        pieces = face_free_pieces(widerface)
        # The searches `predict` adds where the detector finds nothing: the close-up, then the photo turned.
        for close_up, turned in ((False, False), (True, False), (True, True)):
            rec.close_up, rec.turned_photos = close_up, turned
            start = time.perf_counter()
            with_face = sum(bool(rec.predict(p).faces) for p in pieces)
            ms = 1000 * (time.perf_counter() - start) / len(pieces)
            print(f"\nface-free pieces of WIDER FACE photos with a face reported, close-up {'on' if close_up else 'off'}, "
                  f"turned photos {'on' if turned else 'off'}: {with_face} of {len(pieces)} ({100 * with_face / len(pieces):.1f}%), {ms:.1f} ms a piece")


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
    ap.add_argument("--photo-path", action="store_true", help="give the crops to `predict` as photos, close-up search off and on")
    ap.add_argument("--sides", type=int, nargs="+", default=[64, 112, 448], help="--photo-path: crop sides in pixels")
    ap.add_argument("--widerface", type=Path, default=None, help="--photo-path: folder of widerface-val5 for the face-free pieces")
    ap.add_argument("--close-up-px", type=int, default=None, help="--photo-path: try another close-up search size (choose on val)")
    ap.add_argument("--close-up-border", type=float, default=None, help="--photo-path: try another close-up border share (choose on val)")
    args = ap.parse_args()
    import emolens.pipeline.recognizer as recognizer  # the constants the close-up search is run with

    recognizer._CLOSE_UP_PX = args.close_up_px or recognizer._CLOSE_UP_PX
    recognizer._CLOSE_UP_BORDER = recognizer._CLOSE_UP_BORDER if args.close_up_border is None else args.close_up_border

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(args.data, progress=False).subset(args.split)
    faces, labels = (ds.images[: args.limit], ds.labels[: args.limit]) if args.limit else (ds.images, ds.labels)
    rec = EmotionRecognizer(args.model, **({"detector": args.detector} if args.detector else {}))
    if args.photo_path:
        print(f"Data: {args.data}, split {args.split} ({len(faces)} faces), as photos; {rec!r}; "
              f"close-up search at {recognizer._CLOSE_UP_PX} px on a {recognizer._CLOSE_UP_BORDER} border\n")
        print_photo_path(rec, faces, labels, args.sides, args.widerface)
        return
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
