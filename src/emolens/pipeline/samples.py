"""Real faces available offline, for the demo, the tests and the speed benchmark.

scikit-image ships `astronaut.png`, a real photo of a smiling person (Eileen Collins, NASA,
public domain). From it we build a group photo and test videos (moving, growing and
shrinking faces, several at once, stretches with no face) with OpenCV's video writer, each
with the true face boxes so callers can check where faces were found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.errors import ConfigError

# The head in astronaut.png (x, y, w, h) and the face inside it, in head coordinates: the box
# OpenCV's frontal-face cascade draws there (x 177, y 66, 95 x 95 in the full photo).
_HEAD = (142, 20, 180, 190)
_FACE_IN_HEAD = (35, 46, 95, 95)


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB photo of a smiling astronaut. Needs scikit-image."""
    try:
        from skimage import data
    except ImportError:
        raise ConfigError("the sample photos come from scikit-image: pip install scikit-image") from None
    return data.astronaut()


def grace_hopper() -> np.ndarray:
    """(600, 512, 3) uint8 RGB portrait of Grace Hopper, a straight face: matplotlib's sample
    photo, which ships with matplotlib (a core dependency), so it needs nothing more."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        return np.asarray(photo.convert("RGB"))


def astronaut_head(bgr: bool = True) -> np.ndarray:
    x, y, w, h = _HEAD
    head = astronaut()[y : y + h, x : x + w]
    return np.ascontiguousarray(head[:, :, ::-1] if bgr else head)


def _background(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient: like a wall, nothing a face detector could mistake for a face."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 130 - 50 * xx / width], axis=-1)
    return bg.astype(np.uint8)


def _paste(canvas: np.ndarray, head: np.ndarray, cx: float, cy: float, head_h: int, flip: bool) -> tuple[int, int, int, int]:
    """Paste the head scaled to height head_h, centred at (cx, cy); returns the true face box."""
    import cv2

    scale = head_h / head.shape[0]
    img = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if flip:
        img = img[:, ::-1]
    h, w = img.shape[:2]
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    H, W = canvas.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(W, x0 + w), min(H, y0 + h)
    if dx1 > dx0 and dy1 > dy0:
        canvas[dy0:dy1, dx0:dx1] = img[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    fx, fy, fw, fh = _FACE_IN_HEAD
    if flip:
        fx = head.shape[1] - fx - fw
    return (int(round(x0 + fx * scale)), int(round(y0 + fy * scale)), int(round(fw * scale)), int(round(fh * scale)))


def group_photo(width: int = 1280, height: int = 560) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A BGR photo of the astronaut's head four times at different sizes, and the face boxes."""
    head = astronaut_head()
    canvas = _background(width, height)
    spots = [(0.10, 0.36, 0.50, False), (0.37, 0.60, 0.62, True), (0.62, 0.34, 0.40, False), (0.86, 0.62, 0.46, True)]
    boxes = [_paste(canvas, head, fx * width, fy * height, int(hs * height), flip) for fx, fy, hs, flip in spots]
    return canvas, boxes


@dataclass
class SampleVideo:
    path: Path
    boxes: list[list[tuple[int, int, int, int]]]  # true face boxes in each frame (empty: no face)
    fps: float
    size: tuple[int, int]  # width, height


def make_video(
    path: str | Path, *, faces: int = 1, frames: int = 60, width: int = 640, height: int = 480, fps: float = 30.0,
    head_height: tuple[int, int] = (170, 230), empty: tuple[int, int] | None = None, fourcc: str = "mp4v",
) -> SampleVideo:
    """Write a test video of 1-4 astronaut heads drifting and changing size over a gradient.

    head_height: the range each head's height sweeps (pixels); with four faces they are
    scaled to fit a quadrant. empty=(start, stop): frames in that range show no face.
    """
    import cv2

    if not 1 <= faces <= 4:
        raise ConfigError(f"faces must be 1 to 4, got {faces}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise ConfigError(f"{path}: OpenCV cannot write {fourcc} video here")
    head = astronaut_head()
    bg = _background(width, height)
    centres = [(0.5, 0.5)] if faces == 1 else [(0.25, 0.28), (0.75, 0.28), (0.25, 0.74), (0.75, 0.74)][:faces]
    shrink = 1.0 if faces == 1 else 0.5
    all_boxes = []
    for i in range(frames):
        canvas = bg.copy()
        boxes = []
        if not (empty and empty[0] <= i < empty[1]):
            for k, (cx, cy) in enumerate(centres):
                phase = 2 * np.pi * i / max(frames, 1) + k
                lo, hi = head_height
                h = int(shrink * (lo + (hi - lo) * (0.5 + 0.5 * np.sin(phase))))
                dx = 0.08 * width * shrink * np.sin(phase)
                dy = 0.05 * height * shrink * np.cos(phase)
                boxes.append(_paste(canvas, head, cx * width + dx, cy * height + dy, h, flip=bool(k % 2)))
        writer.write(canvas)
        all_boxes.append(boxes)
    writer.release()
    return SampleVideo(path, all_boxes, fps, (width, height))
