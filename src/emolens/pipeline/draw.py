"""Drawing faces on images: a box and label per face, and a bar per emotion beside it.

Sizes scale with the image (`_unit`), so labels stay readable on a 4K photo and a webcam
frame alike. Everything is plain OpenCV drawing, cheap enough for 60 frames/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from emolens.labels import EMOTIONS

if TYPE_CHECKING:  # pragma: no cover
    from emolens.pipeline.results import FaceResult

# BGR; picked to be told apart at a glance and to keep their usual associations.
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 150, 40),
    "fear": (170, 60, 160),
    "happy": (0, 200, 255),
    "neutral": (190, 190, 190),
    "sad": (210, 120, 40),
    "surprise": (230, 210, 0),
}
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX, spelled as its value so this module imports without cv2


def color_of(label: str) -> tuple[int, int, int]:
    return COLORS.get(label, (0, 255, 0))


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bg
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def _unit(shape: tuple[int, ...]) -> float:
    """Drawing scale: 1.0 for a 440-pixel-high (4:3) image, never below 0.75 (small text blurs)."""
    return max(0.75, min(shape[0], shape[1] * 0.75) / 440.0)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A drawable (H, W, 3) uint8 BGR copy of a gray or BGR image."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image.copy()


def _label_box(img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], u: float) -> None:
    """Text on a filled tag whose bottom-left corner is (x, y), kept inside the image."""
    import cv2

    scale, thick = 0.55 * u, max(1, int(round(1.4 * u)))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thick)
    pad = max(2, int(3 * u))
    H, W = img.shape[:2]
    x = int(min(max(0, x), max(0, W - tw - 2 * pad)))
    y = int(min(max(th + 2 * pad, y), H))
    cv2.rectangle(img, (x, y - th - 2 * pad), (x + tw + 2 * pad, y), color, -1)
    cv2.putText(img, text, (x + pad, y - pad), _FONT, scale, _text_color(color), thick, cv2.LINE_AA)


def draw_bars(
    img: np.ndarray, scores: dict[str, float], x: int, y: int, u: float, labels: Sequence[str] = EMOTIONS, width: int | None = None
) -> tuple[int, int]:
    """A bar per emotion, top-left at (x, y), on a dark translucent panel; returns (w, h)."""
    import cv2

    row = int(round(15 * u))
    name_w = int(round(62 * u))
    bar_w = width - name_w - int(40 * u) if width else int(round(70 * u))
    pw, ph = name_w + bar_w + int(40 * u), row * len(labels) + int(6 * u)
    H, W = img.shape[:2]
    x, y = int(min(max(0, x), max(0, W - pw))), int(min(max(0, y), max(0, H - ph)))
    roi = img[y : y + ph, x : x + pw]
    cv2.convertScaleAbs(roi, roi, alpha=0.35)  # darken in place, so bars and text read on any background
    scale, thick = 0.42 * u, max(1, int(round(u)))
    top = max(labels, key=lambda k: scores.get(k, 0.0))
    for i, name in enumerate(labels):
        p = float(scores.get(name, 0.0))
        cy = y + int(3 * u) + i * row
        text_color = (255, 255, 255) if name == top else (200, 200, 200)
        cv2.putText(img, name, (x + int(3 * u), cy + row - int(4 * u)), _FONT, scale, text_color, thick, cv2.LINE_AA)
        bx = x + name_w
        cv2.rectangle(img, (bx, cy + int(3 * u)), (bx + bar_w, cy + row - int(2 * u)), (70, 70, 70), -1)
        cv2.rectangle(img, (bx, cy + int(3 * u)), (bx + int(round(bar_w * p)), cy + row - int(2 * u)), color_of(name), -1)
        cv2.putText(img, f"{p * 100:.0f}", (bx + bar_w + int(4 * u), cy + row - int(4 * u)), _FONT, scale, text_color, thick, cv2.LINE_AA)
    return pw, ph


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])) * max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))


def _panel_spot(box: tuple[int, int, int, int], pw: int, ph: int, shape: tuple[int, ...], taken: list) -> tuple[tuple[int, int], bool]:
    """Where a face's score panel covers least of the other faces and panels (right of the
    face, left, below or above, kept inside the image), and whether it covers nothing there."""
    x, y, w, h = box
    H, W = shape[:2]
    gap = 4
    spots = [(x + w + gap, y), (x - gap - pw, y), (x, y + h + gap), (x, y - gap - ph)]
    best, best_cost = spots[0], None
    for px, py in spots:
        inside = min(px, py) >= 0 and px + pw <= W and py + ph <= H
        cost = 0 if inside else W * H  # leaving the image: last resort
        px, py = min(max(0, px), max(0, W - pw)), min(max(0, py), max(0, H - ph))
        cost += sum(_overlap((px, py, pw, ph), t) for t in taken)
        if best_cost is None or cost < best_cost:  # ties: the earlier spot
            best, best_cost = (px, py), cost
    return best, best_cost == 0


def draw_mini_bars(img: np.ndarray, scores: dict[str, float], x: int, y: int, h: int, labels: Sequence[str] = EMOTIONS) -> int:
    """A narrow column chart, one bar per emotion in its colour, top-left at (x, y), h high;
    for crowded images where the named panel would cover other faces. Returns its width."""
    import cv2

    bw = max(3, h // 12)
    width = len(labels) * (bw + 1) + 3
    H, W = img.shape[:2]
    x, y = int(min(max(0, x), max(0, W - width))), int(min(max(0, y), max(0, H - h)))
    roi = img[y : y + h, x : x + width]
    cv2.convertScaleAbs(roi, roi, alpha=0.35)
    for i, name in enumerate(labels):
        top = y + h - 2 - int(round((h - 4) * float(scores.get(name, 0.0))))
        bx = x + 2 + i * (bw + 1)
        cv2.rectangle(img, (bx, top), (bx + bw - 1, y + h - 2), color_of(name), -1)
    return width


def draw_faces(
    image: np.ndarray, faces: Sequence[FaceResult], *, labels: Sequence[str] = EMOTIONS, bars: bool = True, ids: bool | None = None
) -> np.ndarray:
    """A BGR copy of `image` with every face boxed, labelled, and (bars=True) its scores: a
    named bar per emotion beside the face where that covers nothing, else a narrow column
    chart in the emotions' colours."""
    import cv2

    img = to_bgr(image)
    u = _unit(img.shape)
    show_ids = any(f.face_id is not None for f in faces) if ids is None else ids
    if bars:  # first, so that boxes and labels stay on top where panels overlap other faces
        pw = int(round(172 * u))
        ph = int(round(15 * u)) * len(labels) + int(6 * u)
        taken = [f.box for f in faces]
        for face in faces:
            (px, py), free = _panel_spot(face.box, pw, ph, img.shape, taken)
            if free:
                draw_bars(img, face.scores, px, py, u, labels, width=pw)
                taken.append((px, py, pw, ph))
                continue
            x, y, w, h = face.box
            mw = len(labels) * (max(3, h // 12) + 1) + 3
            (mx, my), _ = _panel_spot(face.box, mw, h, img.shape, taken)
            draw_mini_bars(img, face.scores, mx, my, h, labels)
            taken.append((mx, my, mw, h))
    for face in faces:
        x, y, w, h = face.box
        color = color_of(face.label)
        cv2.rectangle(img, (x, y), (x + w, y + h), color, max(2, int(round(2 * u))))
        tag = f"{face.label} {face.score:.0%}"
        if show_ids and face.face_id is not None:
            tag = f"#{face.face_id} {tag}"
        _label_box(img, tag, x, y if y > 20 * u else y + h + int(22 * u), color, u)
    return img


def draw_fps(img: np.ndarray, fps: float) -> None:

    u = _unit(img.shape)
    _label_box(img, f"{fps:.0f} fps", int(6 * u), int(28 * u), (40, 40, 40), u)


def score_panel(scores: dict[str, float] | None, height: int, width: int = 260, labels: Sequence[str] = EMOTIONS, title: str = "") -> np.ndarray:
    """A (height, width, 3) side panel: a large bar graph of one face's scores, for live views."""
    import cv2

    panel = np.full((height, width, 3), 30, np.uint8)
    u = max(0.8, height / 480.0) * width / 260.0
    cv2.putText(panel, title or "emotions", (int(10 * u), int(28 * u)), _FONT, 0.6 * u, (255, 255, 255), max(1, int(round(u * 1.3))), cv2.LINE_AA)
    if not scores:
        cv2.putText(panel, "no face", (int(10 * u), int(60 * u)), _FONT, 0.55 * u, (160, 160, 160), 1, cv2.LINE_AA)
        return panel
    row = min(int(44 * u), (height - int(50 * u)) // len(labels))
    for i, name in enumerate(labels):
        p = float(scores.get(name, 0.0))
        y0 = int(44 * u) + i * row
        cv2.putText(panel, f"{name} {p * 100:.0f}%", (int(10 * u), y0 + int(row * 0.38)), _FONT, 0.48 * u, (230, 230, 230), 1, cv2.LINE_AA)
        cv2.rectangle(panel, (int(10 * u), y0 + int(row * 0.48)), (width - int(10 * u), y0 + int(row * 0.85)), (70, 70, 70), -1)
        cv2.rectangle(panel, (int(10 * u), y0 + int(row * 0.48)), (int(10 * u + (width - 20 * u) * p), y0 + int(row * 0.85)), color_of(name), -1)
    return panel
