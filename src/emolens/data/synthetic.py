"""A small, learnable, face-like dataset drawn with OpenCV: for tests, demos and benchmarks.

Each emotion is a distinct cartoon expression (eyebrow slant and height, eye openness, mouth
shape), drawn with random pose, size, brightness, contrast, blur and noise, so a small CNN
learns it in seconds but a constant predictor scores only 1/7. Nothing here resembles the
real FER-2013 distribution; use it to check that code runs and learns, never to judge a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from emolens.data.dataset import SPLITS, FaceDataset
from emolens.errors import ConfigError
from emolens.labels import EMOTIONS
from emolens.preprocessing import PreprocessConfig

_CANVAS = 96  # drawn at 2x the FER side, then shrunk with INTER_AREA: anti-aliased strokes

# Per emotion: brow inner/outer height offsets (+ = up), eye half-height, mouth kind and curve.
# Brow offsets are in canvas pixels relative to the neutral brow line.
_EXPRESSIONS: dict[str, dict[str, float | str]] = {
    "angry":    {"brow_in": -6, "brow_out": 3, "eye": 3, "mouth": "line", "curve": -2},
    "disgust":  {"brow_in": -3, "brow_out": -1, "eye": 2, "mouth": "wave", "curve": 0},
    "fear":     {"brow_in": 6, "brow_out": 1, "eye": 6, "mouth": "oval_wide", "curve": 0},
    "happy":    {"brow_in": 0, "brow_out": 0, "eye": 4, "mouth": "arc", "curve": 9},
    "neutral":  {"brow_in": 0, "brow_out": 0, "eye": 4, "mouth": "line", "curve": 0},
    "sad":      {"brow_in": 5, "brow_out": -3, "eye": 3, "mouth": "arc", "curve": -8},
    "surprise": {"brow_in": 9, "brow_out": 9, "eye": 7, "mouth": "oval_tall", "curve": 0},
}


def _draw_face(rng: np.random.Generator, expr: dict[str, float | str], size: int) -> np.ndarray:
    import cv2

    c = _CANVAS
    bg = int(rng.integers(20, 90))
    skin = int(rng.integers(130, 210))
    ink = int(rng.integers(0, 50))
    img = np.full((c, c), bg, np.uint8)
    # Pose: the whole face is drawn in a jittered frame (shift, scale), as face crops vary.
    cx = c / 2 + rng.normal(0, 3)
    cy = c / 2 + rng.normal(0, 3)
    s = rng.uniform(0.85, 1.1)
    j = lambda v: v + rng.normal(0, 1.0)  # noqa: E731 - per-stroke jitter, in canvas pixels

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(cx + s * x)), int(round(cy + s * y))

    cv2.ellipse(img, pt(0, 4), (int(34 * s), int(44 * s)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    thick = max(2, int(round(3 * s)))
    for side in (-1, 1):
        ex, ey = 15 * side, -8
        # Brows: inner end near the nose, outer end at the temple.
        inner = pt(j(5 * side), j(-22 - float(expr["brow_in"])))
        outer = pt(j(25 * side), j(-22 - float(expr["brow_out"])))
        cv2.line(img, inner, outer, ink, thick + 1, cv2.LINE_AA)
        eye_h = max(1, int(round(float(expr["eye"]) * s + rng.normal(0, 0.5))))
        cv2.ellipse(img, pt(j(ex), j(ey)), (int(7 * s), eye_h), 0, 0, 360, ink, -1, cv2.LINE_AA)
    cv2.line(img, pt(0, -4), pt(j(-3), 10), int(skin * 0.7), 2, cv2.LINE_AA)  # nose
    _draw_mouth(img, rng, expr, pt, j, s, ink, thick)
    return _photographed(img, rng, size)


def _draw_mouth(
    img: np.ndarray, rng: np.random.Generator, expr: dict[str, float | str], pt: Callable[[float, float], tuple[int, int]],
    j: Callable[[float], float], s: float, ink: int, thick: int,
) -> None:
    """The expression's mouth, in the face's frame (`pt`), each stroke end jittered (`j`)."""
    import cv2

    mouth, curve = expr["mouth"], float(expr["curve"])
    my = 24 + rng.normal(0, 1.0)
    if mouth == "line":
        cv2.line(img, pt(j(-13), my - curve / 2), pt(j(13), my - curve / 2), ink, thick, cv2.LINE_AA)
        cv2.line(img, pt(-13, my - curve / 2), pt(-16, my + curve), ink, thick, cv2.LINE_AA)
        cv2.line(img, pt(13, my - curve / 2), pt(16, my + curve), ink, thick, cv2.LINE_AA)
    elif mouth == "arc":
        # A smile is the lower half of an ellipse, a frown the upper half, centred lower.
        h = abs(curve) * s
        centre = pt(0, my - (h / s if curve > 0 else -h / s) * 0.5)
        start, end = (0, 180) if curve > 0 else (180, 360)
        cv2.ellipse(img, centre, (int(15 * s), max(1, int(h))), 0, start, end, ink, thick, cv2.LINE_AA)
    elif mouth == "wave":
        xs = np.linspace(-14, 14, 9)
        ys = my + 3 * np.sin(xs / 3.0 + rng.uniform(0, 1))
        pts = np.array([pt(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, ink, thick, cv2.LINE_AA)
    elif mouth == "oval_wide":
        cv2.ellipse(img, pt(0, my), (int(14 * s), int(5 * s)), 0, 0, 360, ink, -1, cv2.LINE_AA)
    else:  # oval_tall
        cv2.ellipse(img, pt(0, my + 2), (int(8 * s), int(11 * s)), 0, 0, 360, ink, -1, cv2.LINE_AA)


def _photographed(img: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """The drawing as a low-resolution crop: a small in-plane rotation, shrunk to `size`, then
    random contrast, brightness and sensor noise."""
    import cv2

    c = img.shape[0]
    rot = cv2.getRotationMatrix2D((c / 2, c / 2), rng.normal(0, 6), 1.0)
    img = cv2.warpAffine(img, rot, (c, c), borderMode=cv2.BORDER_REPLICATE)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img = (img - img.mean()) * rng.uniform(0.6, 1.3) + img.mean() + rng.uniform(-30, 30)
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def make_synthetic_dataset(
    n_per_class: int = 100,
    image_size: int | None = None,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> FaceDataset:
    """Draw `n_per_class` faces per emotion, split train/val/test by `split_fractions`.

    Deterministic for a given (n_per_class, image_size, seed). Example::

        ds = make_synthetic_dataset(n_per_class=50)
        ds.images.shape  # (350, 48, 48)
    """
    image_size = image_size or PreprocessConfig().image_size
    if n_per_class < 3:
        raise ConfigError(f"n_per_class must be at least 3 (one face per split), got {n_per_class}")
    if image_size < 8:
        raise ConfigError(f"image_size must be at least 8, got {image_size}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or abs(sum(split_fractions) - 1) > 1e-6:
        raise ConfigError(f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions}")
    rng = np.random.default_rng(seed)
    images, labels, split = [], [], []
    n_val = int(round(n_per_class * split_fractions[1]))
    n_test = int(round(n_per_class * split_fractions[2]))
    n_train = n_per_class - n_val - n_test
    for k, emotion in enumerate(EMOTIONS):
        for i in range(n_per_class):
            images.append(_draw_face(rng, _EXPRESSIONS[emotion], image_size))
            labels.append(k)
            split.append(0 if i < n_train else 1 if i < n_train + n_val else 2)
    order = rng.permutation(len(images))  # interleave the classes, as real readers do
    images_arr = np.stack(images)[order]
    labels_arr = np.asarray(labels, np.int64)[order]
    split_arr = np.asarray(split, np.int8)[order]
    digest = hashlib.sha256(images_arr.tobytes() + labels_arr.tobytes() + split_arr.tobytes()).hexdigest()
    names = np.asarray([f"synthetic/{SPLITS[s]}/{EMOTIONS[y]}/{i:05d}" for i, (s, y) in enumerate(zip(split_arr, labels_arr, strict=True))])
    return FaceDataset(
        images=images_arr, labels=labels_arr, split=split_arr, names=names,
        source=f"synthetic(n_per_class={n_per_class}, image_size={image_size}, seed={seed})", source_sha256=digest,
    )
