"""OpenCV YuNet (`cv2.FaceDetectorYN`): a small CNN detector, far better than Haar on turned,
tilted and small faces. Its ONNX model is not shipped with OpenCV: the user downloads it
(opencv_zoo, `face_detection_yunet_2023mar.onnx`) and names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emolens.errors import ConfigError, ModelError
from emolens.faces.base import RELOOK_TILT, Detection, FaceDetector, as_bgr_and_gray, sort_largest_first

_WORK_PX = 20  # YuNet finds faces down to about 10 px; shrink until the smallest wanted face is this big
ENV_VAR = "EMOLENS_YUNET_MODEL"


class YuNetDetector(FaceDetector):
    """confidence is YuNet's own face score; faces below `threshold` are dropped. relook_tilt: a face
    found tilted by this many degrees or more is searched again in its window turned upright (0: never)."""

    name = "yunet"

    def __init__(
        self, model_path: str | Path | None = None, min_face_size: int = 20, threshold: float = 0.7, nms_threshold: float = 0.3,
        relook_tilt: float = RELOOK_TILT,
    ):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        self.relook_tilt = self._check_relook_tilt(relook_tilt)
        import cv2

        model_path = model_path or os.environ.get(ENV_VAR)
        if not model_path:
            raise ConfigError(
                "the YuNet detector needs its ONNX model file, which OpenCV does not ship: download "
                "face_detection_yunet_2023mar.onnx from the opencv_zoo repository and pass it as "
                f"--detector yunet:PATH (Python: YuNetDetector(model_path=PATH)) or set {ENV_VAR}"
            )
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such YuNet model file")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise ModelError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; YuNet needs OpenCV >= 4.5.4")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.threshold, nms_threshold, 5000)
        except cv2.error as exc:
            raise ModelError(f"{path}: OpenCV could not load it as a YuNet model ({exc.err})") from None
        self.model_path = path

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        import cv2

        bgr, gray = as_bgr_and_gray(image, gray)
        if bgr is None:
            bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        H, W = bgr.shape[:2]
        scale = min(1.0, _WORK_PX / self.min_face_size)
        small = bgr if scale >= 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        with self._lock:
            self._net.setInputSize((small.shape[1], small.shape[0]))
            _, faces = self._net.detect(small)
        dets = []
        for row in faces if faces is not None else []:
            x, y, w, h = (float(v) / scale for v in row[:4])
            # Then five landmarks, the right eye (the image's left) first: the eyes are columns 4-7,
            # the nose 8-9, the mouth's corners 10-13.
            eyes = ((row[4] / scale, row[5] / scale), (row[6] / scale, row[7] / scale))
            mouth = ((row[10] + row[12]) / (2 * scale), (row[11] + row[13]) / (2 * scale))
            if det := self._keep((x, y, w, h), float(row[-1]), W, H, eyes=eyes, mouth=mouth):
                dets.append(det)
        return sort_largest_first(dets)
