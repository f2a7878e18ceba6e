"""OpenCV Haar cascades: the default detector, offline straight after install.

The cascade XML files ship inside the OpenCV 4.x wheels (`cv2.data.haarcascades`). Haar is
slow at full resolution, so the image is first shrunk until the smallest face we want is a
little larger than the cascade window (20-24 px): faces near the window size are missed
(measured: a face shrunk to 30 px was missed, at 45 px found), so we aim at `_WORK_PX`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emolens.errors import ConfigError, ModelError
from emolens.faces.base import NEAR_SIZES, Box, Detection, FaceDetector, as_bgr_and_gray, merge_overlapping, sort_largest_first

_WORK_PX = 36  # smallest face side, in pixels of the shrunk image, a full-image search looks for
_NEAR_PX = 48  # side a known face is shrunk to when searching near it (found at 48, missed at 36)
_NEAR_STEP = 1.2  # coarser size steps near a known face: a quarter faster, same hits on moving faces
DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"  # fewer false faces than _default at the same speed


def cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    """A cascade file by name (looked up in OpenCV's data folder) or by path."""
    import cv2

    path = Path(name)
    if path.exists():
        return path
    data_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if data_dir is None:
        raise ModelError(
            f"this OpenCV build ({cv2.__version__}) ships no Haar cascades; install OpenCV 4.x "
            "(`pip install 'opencv-python-headless<5'`) or choose another detector (--detector yunet:MODEL.onnx)"
        )
    path = Path(data_dir) / name
    if not path.exists():
        available = sorted(p.name for p in Path(data_dir).glob("haarcascade_*.xml"))
        raise ModelError(f"no Haar cascade {name!r} in {data_dir}; available: {', '.join(available)}")
    return path


class HaarDetector(FaceDetector):
    """Viola-Jones face detection with an OpenCV cascade.

    confidence = n / (n + min_neighbors), where n is the number of overlapping raw hits the
    cascade merged into the face: 0.5 is a face that only just passed `min_neighbors`. Haar has
    no calibrated probability; raise `min_neighbors` to drop weak faces.
    """

    name = "haar"

    def __init__(
        self,
        min_face_size: int = 40,
        scale_factor: float = 1.1,  # step between searched face sizes; 1.2 is twice as fast but misses faces
        min_neighbors: int = 5,  # raw hits needed to keep a face; higher = fewer false faces
        cascade: str = DEFAULT_CASCADE,
        threshold: float = 0.0,
    ):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        import cv2

        if not 1.01 <= scale_factor <= 2.0:
            raise ConfigError(f"scale_factor must be in [1.01, 2], got {scale_factor}")
        if min_neighbors < 1:
            raise ConfigError(f"min_neighbors must be at least 1, got {min_neighbors}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.cascade_file = cascade_path(cascade)
        self._cascade = cv2.CascadeClassifier(str(self.cascade_file))
        if self._cascade.empty():
            raise ModelError(f"{self.cascade_file}: OpenCV could not load this Haar cascade")

    def _run(
        self, gray: np.ndarray, scale: float, min_px: int, max_px: int, neighbors: int, step: float | None = None
    ) -> list[tuple[Box, float]]:
        import cv2

        small = gray if scale >= 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(small.shape) < min_px:
            return []
        with self._lock:
            rects, counts = self._cascade.detectMultiScale2(
                small, scaleFactor=step or self.scale_factor, minNeighbors=neighbors, minSize=(min_px, min_px), maxSize=(max_px, max_px)
            )
        inv = 1.0 / min(scale, 1.0)
        out = []
        for (x, y, w, h), n in zip(rects, counts, strict=True):
            out.append(((x * inv, y * inv, w * inv, h * inv), n / (n + self.min_neighbors)))
        return out

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        _, gray = as_bgr_and_gray(image, gray)
        H, W = gray.shape
        scale = min(1.0, _WORK_PX / self.min_face_size)
        min_px = max(24, int(round(self.min_face_size * scale)))
        dets = []
        for box, conf in self._run(gray, scale, min_px, max(H, W), self.min_neighbors):
            if det := self._keep(box, conf, W, H):
                dets.append(det)
        return sort_largest_first(dets)

    def detect_near(self, image: np.ndarray, box: Box, gray: np.ndarray | None = None) -> Detection | None:
        # Search a window twice the size of the known face, and only sizes close to it: a few
        # pyramid levels on a small crop, about 2 ms instead of 25 ms for the whole frame.
        _, gray = as_bgr_and_gray(image, gray)
        side = max(box[2:])
        scale = min(1.0, _NEAR_PX / side)
        face_px = side * scale  # the known face's side in the shrunk window
        lo, hi = max(24, int(face_px * NEAR_SIZES[0])), int(face_px * NEAR_SIZES[1]) + 1
        neighbors, step = max(1, self.min_neighbors - 2), max(self.scale_factor, _NEAR_STEP)

        def search(window: np.ndarray, _: np.ndarray | None) -> list[Detection]:
            return [Detection(b, conf) for b, conf in self._run(window, scale, lo, hi, neighbors, step=step)]

        return self._nearest_in_window(gray, box, gray, search)


PROFILE_CASCADE = "haarcascade_profileface.xml"  # left-facing profiles; mirrored for the other side
_MERGE_IOU = 0.3  # boxes of the three cascades overlapping this much are one face


class MultiViewHaarDetector(HaarDetector):
    """The frontal cascade plus OpenCV's profile cascade on the image and on its mirror image,
    merged by non-maximum suppression: finds faces turned to profile, at three times the cost."""

    name = "haar-multiview"

    def __init__(self, min_face_size: int = 40, scale_factor: float = 1.1, min_neighbors: int = 5, threshold: float = 0.0):
        super().__init__(min_face_size=min_face_size, scale_factor=scale_factor, min_neighbors=min_neighbors, threshold=threshold)
        self._profile = HaarDetector(min_face_size, scale_factor, min_neighbors, PROFILE_CASCADE, threshold)

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        _, gray = as_bgr_and_gray(image, gray)
        W = gray.shape[1]
        found = super()._find(gray, gray)
        found += self._profile._find(gray, gray)
        mirrored = np.ascontiguousarray(gray[:, ::-1])
        for det in self._profile._find(mirrored, mirrored):
            x, y, w, h = det.box
            found.append(Detection((W - x - w, y, w, h), det.confidence))
        return sort_largest_first(merge_overlapping(found, _MERGE_IOU))

