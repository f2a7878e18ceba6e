"""MediaPipe face detection (BlazeFace), when the `mediapipe` package is installed.

MediaPipe wheels up to 0.10.21 ship the legacy `solutions.face_detection` with both models
inside (short range, for faces within 2 m of a selfie camera, and full range, within 5 m);
newer ones only have the Tasks API, which needs the model file (`blaze_face_short_range.tflite`)
named by the user. Those wheels pin numpy and protobuf and pull in opencv-contrib-python, so the
`mediapipe` extra belongs in an environment of its own (README, "Face detectors").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, ModelError
from emolens.faces.base import Detection, FaceDetector, as_bgr_and_gray, merge_overlapping, sort_largest_first, tiles

# BlazeFace, like MTCNN, reads a strong tilt as much less than it is (a face turned by 60 degrees as
# about 40), so its faces are looked at again upright from 20 degrees on. Chosen on 1,200 FER+
# validation faces turned by 0-90 degrees among 0, 20, 30 and 45: median tilt error at 30/45/60/75
# degrees 4.4/5.6/10.5/24.6 at 20, 4.9/6.7/12.5/25.7 at 30, 4.7/10.0/23.0/37.4 at 45 and without
# (`benchmarks/alignment.py --split val --limit 1200 --angles 0 30 45 60 75 90`; docs/faces.md, "Tilted faces").
_RELOOK_TILT = 20.0


class MediaPipeDetector(FaceDetector):
    """confidence is MediaPipe's detection score; faces below `threshold` are dropped. relook_tilt: a face
    found tilted by this many degrees or more is searched again in its window turned upright (0: never)."""

    name = "mediapipe"

    def __init__(
        self, model_path: str | Path | None = None, min_face_size: int = 20, threshold: float = 0.5, full_range: bool = True,
        tile_px: int = 0, relook_tilt: float = _RELOOK_TILT,
    ):
        super().__init__(min_face_size=min_face_size, threshold=threshold)
        self.relook_tilt = self._check_relook_tilt(relook_tilt)
        if tile_px and tile_px < 64:
            raise ConfigError(f"tile_px must be 0 (whole image) or at least 64, got {tile_px}")
        self.tile_px = int(tile_px)  # > 0: search overlapping tiles this big, for small faces
        try:
            import mediapipe as mp
        except ImportError:
            raise ConfigError(
                "the mediapipe detector needs the optional extra: pip install 'emolens[mediapipe]' "
                "(mediapipe <= 0.10.21 pins numpy and protobuf: give it its own environment)"
            ) from None
        self._legacy = None
        self._task = None
        solutions = getattr(mp, "solutions", None)
        if model_path is None and solutions is not None and hasattr(solutions, "face_detection"):
            # model_selection=1 is the full-range model (faces up to 5 m away), 0 the selfie one.
            self._legacy = solutions.face_detection.FaceDetection(model_selection=int(full_range), min_detection_confidence=self.threshold)
            return
        if model_path is None:
            raise ConfigError(
                f"mediapipe {getattr(mp, '__version__', '?')} ships no face model; download blaze_face_short_range.tflite "
                "(MediaPipe face detector models) and pass --detector mediapipe:PATH"
            )
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such MediaPipe model file")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)), min_detection_confidence=self.threshold)
        self._task = vision.FaceDetector.create_from_options(options)
        self._mp = mp

    def _search(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float, Any]]:
        """Boxes in `rgb`'s pixels, scores and landmarks (eyes, mouth), from one pass of the network.
        Its six keypoints are the right eye (the image's left), the left eye, the nose tip, the
        mouth's centre and the two ears, relative to the image's sides."""
        H, W = rgb.shape[:2]
        with self._lock:  # the MediaPipe graph runs one image at a time
            if self._legacy is not None:
                found = self._legacy.process(rgb).detections or []
            else:
                result = self._task.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        if self._legacy is not None:  # boxes relative to the image's sides
            out = []
            for d in found:
                b, points = d.location_data.relative_bounding_box, d.location_data.relative_keypoints
                out.append(((b.xmin * W, b.ymin * H, b.width * W, b.height * H), float(d.score[0]), _landmarks(points, W, H)))
            return out
        return [((d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height), float(d.categories[0].score),
                 _landmarks(d.keypoints, W, H)) for d in result.detections]

    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        import cv2

        bgr, gray = as_bgr_and_gray(image, gray)
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        H, W = rgb.shape[:2]
        windows = tiles(W, H, self.tile_px) if self.tile_px else [(0, 0, W, H)]
        dets = []
        for x0, y0, w, h in windows:
            for (x, y, bw, bh), score, points in self._search(np.ascontiguousarray(rgb[y0:y0 + h, x0:x0 + w])):
                eyes, mouth = (None, None) if points is None else ([(px + x0, py + y0) for px, py in points[:2]], (points[2][0] + x0, points[2][1] + y0))
                if det := self._keep((x + x0, y + y0, bw, bh), score, W, H, eyes=eyes, mouth=mouth):
                    dets.append(det)
        return sort_largest_first(merge_overlapping(dets) if len(windows) > 1 else dets)


def _landmarks(keypoints: Any, width: int, height: int) -> list[tuple[float, float]] | None:
    """The eyes and the mouth's centre (keypoints 0, 1 and 3) in pixels, or None when the
    detection has fewer keypoints."""
    points = list(keypoints or [])
    if len(points) < 4:
        return None
    return [(points[k].x * width, points[k].y * height) for k in (0, 1, 3)]
