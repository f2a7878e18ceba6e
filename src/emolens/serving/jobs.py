"""The blocking work the inference pool runs: decode the upload(s), call the recognizer, time it.

Results leave here as plain JSON-ready Python (numpy scalars and tuples converted), so the
event loop only serialises.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from emolens.errors import DataError
from emolens.serving.uploads import Upload, decode_image


def jsonable(obj: Any) -> Any:
    """numpy and tuples -> plain JSON types, recursively; everything else as is."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def face_to_dict(face: Any) -> dict[str, Any]:
    """One `FaceResult` as JSON: its `summary()`, the source of every export of results."""
    return jsonable(face.summary() if hasattr(face, "summary") else dict(face))


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class Runner:
    """The recognizer, and what it takes to call it from several worker threads at once.

    OpenCV's CascadeClassifier (the Haar detector) is not thread-safe: two threads in
    detectMultiScale on one instance fail with `cv2.error ... scaleIdx` or return wrong boxes
    (measured with 4 threads). So whole-image prediction, which detects, is serialised unless
    the recognizer sets `thread_safe = True`; decoding and crop classification (no detector;
    PyTorch and onnxruntime allow concurrent inference) run in parallel.
    """

    def __init__(self, recognizer: Any):
        self.recognizer = recognizer
        self.detect_lock: AbstractContextManager = nullcontext() if getattr(recognizer, "thread_safe", False) else threading.Lock()

    def predict_image(self, upload: Upload, max_pixels: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        image = decode_image(upload, max_pixels)
        t1 = time.perf_counter()
        with self.detect_lock:
            t_locked = time.perf_counter()
            result = self.recognizer.predict(image, color_order="rgb", name=upload.name)
        t2 = time.perf_counter()
        timings = {"decode_ms": _ms(t1 - t0), "lock_ms": _ms(t_locked - t1), "predict_ms": _ms(t2 - t_locked)}
        speed = getattr(result, "speed", None)
        if isinstance(speed, dict):  # the pipeline's own breakdown (preprocess, detect, classify)
            timings["pipeline_ms"] = {k: round(float(v), 3) for k, v in speed.items()}
        return {
            "faces": jsonable(result.summary()),
            "image": {"width": int(image.shape[1]), "height": int(image.shape[0])},
            "timings": timings,
        }

    def predict_crops(self, uploads: list[Upload], max_pixels: int) -> dict[str, Any]:
        """A batch of face crops; one that cannot be decoded is reported and the others answered."""
        t0 = time.perf_counter()
        entries: list[dict[str, Any]] = [{"index": i, "filename": u.name} for i, u in enumerate(uploads)]
        images, good = [], []
        for i, upload in enumerate(uploads):
            try:
                images.append(decode_image(upload, max_pixels))
                good.append(i)
            except DataError as exc:
                entries[i]["error"] = str(exc)
        t1 = time.perf_counter()
        faces = self.recognizer.predict_crops(images, color_order="rgb") if images else []
        t2 = time.perf_counter()
        if len(faces) != len(images):
            raise RuntimeError(f"recognizer returned {len(faces)} results for {len(images)} crops")
        for i, face in zip(good, faces, strict=True):
            entries[i].update({k: v for k, v in face_to_dict(face).items() if k not in ("index", "filename")})
        return {"crops": entries, "timings": {"decode_ms": _ms(t1 - t0), "predict_ms": _ms(t2 - t1)}}
