"""Faces tilted in the image plane: what turning each crop upright by the detector's eyes is worth.

    python benchmarks/alignment.py --data ../shared/datasets/ferplus/ferplus-images.zip
    python benchmarks/alignment.py --data ... --split val --detectors centerface mtcnn --angles 0 10 20 30 45 60

Every face of the split is shown to the detector at 160 px in a canvas that continues its edges
(as benchmarks/framing.py does), turned clockwise by each angle (every other face the other
way, so that both directions count). The detection nearest the face is cut by the pipeline's
own `EmotionRecognizer.crop`, with the model's measured framing, twice: as the box lies
(`--no-align`) and turned upright by its landmarks (`align`, the default), then classified.
Per angle: the faces found, the accuracy of both crops, the median error of the tilt read from
the eyes and mouth (`Detection.roll`) against the turn, and the face's own FER frame turned back
by the exact angle. FER+ test faces carry FER+ majority labels; choose settings on
`--split val`, never on test.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def turned_canvas(face: np.ndarray, clockwise: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face in a canvas (`place_in_canvas`) turned clockwise by `clockwise` degrees about its
    centre, and the face's FER frame (x, y, w, h), whose centre the turn leaves in place."""
    import cv2

    from emolens.faces.framing import place_in_canvas

    canvas, frame = place_in_canvas(face)
    centre = ((canvas.shape[1] - 1) / 2.0, (canvas.shape[0] - 1) / 2.0)
    turn = cv2.getRotationMatrix2D(centre, -clockwise, 1.0)  # OpenCV's positive angle is anticlockwise
    return cv2.warpAffine(canvas, turn, canvas.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), frame


def nearest_detection(detections: list, frame: tuple[int, int, int, int]):
    """The detection whose box centre lies nearest the frame's, within a third of the frame; or None."""
    fx, fy, fw, fh = frame
    best, best_dist = None, fw / 3.0
    for det in detections:
        x, y, w, h = det.box
        dist = np.hypot(x + w / 2 - (fx + fw / 2), y + h / 2 - (fy + fh / 2))
        if dist < best_dist:
            best, best_dist = det, dist
    return best


def score_angle(rec, faces: np.ndarray, labels: np.ndarray, angle: float, photo: bool = False) -> dict[str, float]:
    """Accuracy of the three crops, and how well the landmarks tell the turn, at one angle. photo:
    search as `predict` searches a photo (`find_photo_faces`: close-ups, photos the wrong way round)."""
    from emolens.faces.base import wrap_degrees
    from emolens.preprocessing import crop_face

    crops: dict[str, list[np.ndarray]] = {"as the box lies": [], "turned upright": [], "FER frame": []}
    kept, errors = [], []
    size = rec.config.preprocess.image_size
    for i, face in enumerate(faces):
        turn = angle if i % 2 == 0 else -angle
        canvas, frame = turned_canvas(face, turn)
        det = nearest_detection(rec.find_photo_faces(canvas) if photo else rec.detector.detect(canvas), frame)
        if det is None:
            continue
        kept.append(i)
        rec.align = False
        crops["as the box lies"].append(rec.crop(canvas, [det])[0])
        rec.align = True
        crops["turned upright"].append(rec.crop(canvas, [det])[0])
        crops["FER frame"].append(crop_face(canvas, frame, 0.0, size, roll=turn))
        if det.eyes is not None:
            errors.append(abs(wrap_degrees(det.roll - turn)))  # a roll of 0 for disagreeing landmarks counts too
    y = labels[kept]
    out = {name: float((rec.classify(np.stack(c)).argmax(1) == y).mean()) if c else float("nan") for name, c in crops.items()}
    out["found"] = len(kept)
    out["tilt error"] = float(np.median(errors)) if errors else float("nan")
    return out


def main() -> None:
    from emolens.data import load_dataset
    from emolens.faces.framing import FACE_PX
    from emolens.pipeline import EmotionRecognizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="FER+ images (FER+ majority labels) or FER-2013 in any form emolens reads")
    ap.add_argument("--split", default="test", choices=["val", "test"], help="faces to score (choose settings on val)")
    ap.add_argument("--model", default=None, help="model file or shipped name (default: the shipped one)")
    ap.add_argument("--detectors", nargs="+", default=["centerface"], help="detectors that find eyes: centerface, mtcnn, ...")
    ap.add_argument("--angles", nargs="+", type=float, default=[0, 15, 30, 45], help="turns in degrees")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N faces of the split (0 = all)")
    ap.add_argument("--photo", action="store_true", help="search each canvas as `predict` searches a photo, turned photos included (angles past 90)")
    ap.add_argument("--min-face-size", type=int, default=None, help="the detectors' smallest face (default: each detector's own)")
    args = ap.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(args.data, progress=False).subset(args.split)
    faces, labels = (ds.images[: args.limit], ds.labels[: args.limit]) if args.limit else (ds.images, ds.labels)
    print(f"Data: {args.data}, split {args.split} ({len(faces)} faces); faces shown at {FACE_PX} px\n")
    for name in args.detectors:
        rec = EmotionRecognizer(args.model, detector=name, min_face_size=args.min_face_size)
        print(f"### {rec!r}{', searched as photos' if args.photo else ''}\n")
        print("| turn (degrees) | faces found | as the box lies (`--no-align`) | turned upright (default) | gain | "
              "median tilt error | the FER frame turned back exactly |")
        print("|---|---|---|---|---|---|---|")
        for angle in args.angles:
            r = score_angle(rec, faces, labels, angle, photo=args.photo)
            gain = 100 * (r["turned upright"] - r["as the box lies"])
            print(f"| {angle:g} | {r['found']} of {len(faces)} | {100 * r['as the box lies']:.2f}% | {100 * r['turned upright']:.2f}% | "
                  f"{gain:+.2f} | {r['tilt error']:.1f} | {100 * r['FER frame']:.2f}% |", flush=True)
        print()


if __name__ == "__main__":
    main()
