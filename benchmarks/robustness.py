"""Accuracy on test faces under the conditions of real photos and video, side by side.

    python benchmarks/robustness.py --ferplus ../shared/datasets/ferplus/ferplus-images.zip \
        --fer2013 ../shared/datasets/fer2013/archive.zip --models fer2013 default runs/x/best.safetensors

Each condition is applied to every test face (48x48, as the dataset stores it) with a fixed
seed, so every model sees exactly the same degraded faces:
- box jitter: the crop a detector gives is off by up to 12% of the face and 15% in size;
- rotation: in-plane, uniform in +-25 degrees;
- blur (sigma 1.2 px), noise (std 12 grey levels), JPEG quality 15;
- low light: gamma 2.2 and half the exposure; low contrast: 40% of the deviations kept;
- small face: down to 24 px and back up; occlusion: a flat grey block over a quarter of the face.
Scores are accuracy per condition and the mean over the degraded ones (the clean row is shown
apart). Two rows follow the mean, outside it (added after the mean's figures were published, so
those stay comparable): faces 5 and 7 stops underexposed (linear light divided by 2**stops,
through sRGB's 2.2 gamma: a dim room, a night-time video frame), and 7 stops with a camera's read
noise added (2 grey levels). FER+ uses its majority labels on FER2013Test; FER-2013 its PrivateTest labels. The `fer`
package joins when it is installed (benchmarks/peers.py). Nothing here selects a model; to choose
one, score `--split val` (FER2013Valid, and FER-2013's PublicTest).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

Condition = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _warp(face: np.ndarray, rng: np.random.Generator, shift: float, scale: float, angle: float) -> np.ndarray:
    import cv2

    S = face.shape[0]
    a = rng.uniform(-angle, angle)
    z = rng.uniform(1 - scale, 1 + scale)
    tx, ty = rng.uniform(-shift, shift, 2) * S
    m = cv2.getRotationMatrix2D((S / 2, S / 2), a, z)
    m[:, 2] += (tx, ty)
    return cv2.warpAffine(face, m, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    _, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _small(face: np.ndarray, side: int) -> np.ndarray:
    import cv2

    S = face.shape[0]
    return cv2.resize(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA), (S, S), interpolation=cv2.INTER_LINEAR)


def _occlude(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    S = face.shape[0]
    h = w = S // 2  # a quarter of the area
    y, x = rng.integers(0, S - h + 1), rng.integers(0, S - w + 1)
    out = face.copy()
    out[y : y + h, x : x + w] = 128
    return out


def _levels(face: np.ndarray, gamma: float = 1.0, gain: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    x = face.astype(np.float32) / 255.0
    x = x.mean() + (x - x.mean()) * contrast
    x = np.clip(x, 0, 1) ** gamma * gain
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Condition] = {
    "box jitter": lambda f, r: _warp(f, r, shift=0.12, scale=0.15, angle=0.0),
    "rotation 25": lambda f, r: _warp(f, r, shift=0.0, scale=0.0, angle=25.0),
    "blur": lambda f, r: __import__("cv2").GaussianBlur(f, (0, 0), 1.2),
    "noise": lambda f, r: np.clip(f + r.normal(0, 12, f.shape), 0, 255).astype(np.uint8),
    "jpeg q15": lambda f, r: _jpeg(f, 15),
    "low light": lambda f, r: _levels(f, gamma=2.2, gain=0.5),
    "low contrast": lambda f, r: _levels(f, contrast=0.4),
    "small face 24px": lambda f, r: _small(f, 24),
    "occlusion": _occlude,
}


def _underexposed(face: np.ndarray, stops: float) -> np.ndarray:
    return np.round(face.astype(np.float32) * np.float32(2.0 ** (-stops / 2.2))).astype(np.uint8)


# Reported after the mean, outside it.
EXTRA_CONDITIONS: dict[str, Condition] = {
    "underexposed 5 stops": lambda f, r: _underexposed(f, 5),
    "underexposed 7 stops": lambda f, r: _underexposed(f, 7),
    # A dim room on a webcam: the sensor's read noise (2 grey levels) on top of the dark face.
    "underexposed 7 stops, noisy": lambda f, r: np.clip(_underexposed(f, 7) + r.normal(0, 2, f.shape), 0, 255).round().astype(np.uint8),
}


def degrade(faces: np.ndarray, condition: str, seed: int = 0) -> np.ndarray:
    """Every face under one condition; the same seed gives the same faces for every model."""
    if condition == "clean":
        return faces
    rng = np.random.default_rng(seed)
    fn = {**CONDITIONS, **EXTRA_CONDITIONS}[condition]
    return np.stack([fn(f, rng) for f in faces])


def _emolens_scorer(spec: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    from emolens.inference import predict_proba
    from emolens.models import load_model, resolve_model_path

    model = load_model(resolve_model_path(spec))
    name = f"emolens {model.emolens_config.version} ({spec})"
    return name, lambda faces: predict_proba(model, faces)


def _test_sets(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import warnings

    from emolens.data import load_dataset

    sets = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FER+ drops its unknown / tied faces; counted in the table
        if args.ferplus:
            t = load_dataset(args.ferplus, progress=False).subset(args.split)
            sets[f"FER+ {args.split} (majority)"] = (t.images, t.labels)
        if args.fer2013:
            t = load_dataset(args.fer2013, progress=False).subset(args.split)
            sets["FER-2013 PrivateTest" if args.split == "test" else "FER-2013 PublicTest"] = (t.images, t.labels)
    if args.limit:
        sets = {k: (x[: args.limit], y[: args.limit]) for k, (x, y) in sets.items()}
    return sets


def run(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """{test set: {model: {condition: accuracy}}}, clean and mean included."""
    scorers = [_emolens_scorer(m) for m in args.models]
    if not args.no_fer:
        from peers import load_fer_package

        fer = load_fer_package()
        if fer is not None:
            scorers.append((fer.name, fer.predict_proba))
        else:
            print("the fer package is not installed here: no fer rows (see benchmarks/peers.py)", file=sys.stderr)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for set_name, (faces, labels) in _test_sets(args).items():
        per_model: dict[str, dict[str, float]] = {name: {} for name, _ in scorers}
        for cond in ("clean", *CONDITIONS, *EXTRA_CONDITIONS):
            x = degrade(faces, cond, seed=args.seed)
            for name, score in scorers:
                per_model[name][cond] = float((score(x).argmax(1) == labels).mean())
        for row in per_model.values():
            row["mean (degraded)"] = float(np.mean([row[c] for c in CONDITIONS]))
        results[f"{set_name}, {len(labels)} faces"] = per_model
    return results


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for set_name, per_model in results.items():
        models = list(per_model)
        lines += [f"### {set_name}", "", "| condition | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
        # A JSON written before the extra rows existed (the model card's) has none of them.
        for cond in [c for c in ("clean", *CONDITIONS, "mean (degraded)", *EXTRA_CONDITIONS) if c in per_model[models[0]]]:
            cells = [f"{100 * per_model[m][cond]:.2f}%" for m in models]
            label = f"**{cond}**" if cond.startswith("mean") else cond
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferplus", help="FER+ images (ferplus-images.zip or its folders)")
    ap.add_argument("--fer2013", help="FER-2013 in any form emolens reads")
    ap.add_argument("--models", nargs="+", default=["default"], help="model files, run folders or shipped models (default, fer2013)")
    ap.add_argument("--split", default="test", choices=["val", "test"], help="faces to score: choose models and settings on val, never on test")
    ap.add_argument("--limit", type=int, default=0, help="first N faces only (quick checks)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fer", action="store_true", help="leave out the fer package even where it is installed")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    if not (args.ferplus or args.fer2013):
        ap.error("give --ferplus and/or --fer2013")
    results = run(args)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
