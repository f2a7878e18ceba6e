"""Measure how a detector's boxes sit on faces framed as FER-2013 frames them.

A network trained on FER-2013 has learned that framing (brow to chin, a little hair, the face
filling the square). A detector's box is tighter or looser, higher or lower, depending on the
detector, so cutting "the box plus a margin" shows the network a face framed differently from
every face it was trained on. `measure_framing` runs a detector on training faces placed in a
larger canvas, records where its box falls relative to the known FER frame, and returns the
median geometry as a `Framing`: the crop that, applied to that detector's boxes, gives back
FER-2013's framing. The result is stored in the model's `PreprocessConfig.framing`, and
`EmotionRecognizer.crop` uses it for that detector.

Example::

    m = measure_framing(create_detector("haar"), train_faces)
    m.framing                          # Framing(scale=1.25, dx=0.0, dy=0.06), say
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emolens.errors import DataError
from emolens.faces.base import FaceDetector
from emolens.preprocessing import Framing

# Faces are shown to the detector at this side (FER-2013's 48 px is below most detectors'
# smallest face) in a canvas this many face sides wide, so that the box is never clipped.
FACE_PX = 160
CANVAS_FACES = 2.0


@dataclass(frozen=True)
class FramingMeasurement:
    framing: Framing  # medians over the faces the detector found
    found: int  # faces with a detection overlapping the frame
    tried: int
    spread: tuple[float, float, float]  # interquartile range of scale, dx, dy

    def to_dict(self) -> dict[str, object]:
        f = self.framing
        return {
            "scale": round(f.scale, 4), "dx": round(f.dx, 4), "dy": round(f.dy, 4), "found": self.found, "tried": self.tried,
            "iqr": [round(v, 4) for v in self.spread],
        }


def place_in_canvas(face: np.ndarray, face_px: int = FACE_PX, canvas_faces: float = CANVAS_FACES) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A face crop scaled to `face_px` in the middle of a larger canvas that continues its
    edges; returns (canvas, frame box (x, y, w, h)) where the frame is the original crop."""
    import cv2

    big = cv2.resize(face, (face_px, face_px), interpolation=cv2.INTER_CUBIC)
    pad = int(round(face_px * (canvas_faces - 1) / 2))
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return canvas, (pad, pad, face_px, face_px)


def box_geometry(box: tuple[float, float, float, float], frame: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """(scale, dx, dy) that takes `box` to `frame`, in units of the box's longer side."""
    x, y, w, h = box
    fx, fy, fw, fh = frame
    ref = max(w, h)
    return fw / ref, (fx + fw / 2 - (x + w / 2)) / ref, (fy + fh / 2 - (y + h / 2)) / ref


def locate_face(detector: FaceDetector, face: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float], tuple[float, float, float]] | None:
    """Show one FER-framed face to `detector` in a canvas: (canvas, its box on the face, the
    (scale, dx, dy) from that box to the face's frame), or None when it finds no such box."""
    canvas, frame = place_in_canvas(face)
    best, best_dist = None, np.inf
    for det in detector.detect(canvas):
        scale, dx, dy = box_geometry(det.box, frame)
        if not 0.5 <= scale <= 3.0 or abs(dx) > 0.5 or abs(dy) > 0.5:
            continue  # not this face (a fragment of it, or a face-like patch of the border)
        dist = abs(dx) + abs(dy)
        if dist < best_dist:
            best, best_dist = (canvas, det.box, (scale, dx, dy)), dist
    return best


def measure_framing(detector: FaceDetector, faces: np.ndarray, *, limit: int | None = None, seed: int = 0) -> FramingMeasurement:
    """Median crop geometry of `detector` on FER-framed faces (N, S, S) uint8 (use train faces)."""
    if faces.ndim != 3 or faces.dtype != np.uint8 or not len(faces):
        raise DataError(f"measure_framing needs uint8 face crops (N, S, S), got {faces.shape} {faces.dtype}")
    idx = np.arange(len(faces))
    if limit is not None and limit < len(faces):
        idx = np.sort(np.random.default_rng(seed).choice(len(faces), limit, replace=False))
    found = [hit[2] for hit in (locate_face(detector, faces[i]) for i in idx) if hit is not None]
    if len(found) < 10:
        raise DataError(f"the {detector.name} detector found only {len(found)} of {len(idx)} faces; too few to measure its framing")
    arr = np.asarray(found)
    med = np.median(arr, axis=0)
    q1, q3 = np.percentile(arr, [25, 75], axis=0)
    return FramingMeasurement(Framing(*(float(v) for v in med)), len(found), len(idx), tuple(float(v) for v in q3 - q1))
