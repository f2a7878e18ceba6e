"""The blocking work the inference pool runs: decode the upload(s), call the recognizer, time it.

Results leave here as plain JSON-ready Python (numpy scalars and tuples converted), so the
event loop only serialises.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from emolens.errors import DataError, ModelError
from emolens.serving.limits import PixelBudget, ServerLimits
from emolens.serving.uploads import ImageTooLarge, Upload, decode_bounded, load_image, open_header, plan_decode


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


def check_finite(faces: list[dict[str, Any]], what: str) -> None:
    """A NaN or infinite score would make invalid JSON; it means the model is broken, not the request."""
    for face in faces:
        scores = face.get("scores") or {}
        bad = [k for k, v in scores.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad or (isinstance(face.get("score"), float) and not math.isfinite(face["score"])):
            raise ModelError(
                f"{what}: the model produced non-finite scores ({', '.join(f'{k}={scores[k]}' for k in bad) or 'score'}); "
                "its weights or temperature are broken: check the model file (emolens serve --model ...)"
            )


def scale_boxes(faces: list[dict[str, Any]], sx: float, sy: float, width: int, height: int) -> None:
    """Boxes and landmarks found in a downscaled image, in place, onto the original's pixels."""
    for face in faces:
        box = face.get("box")
        if not isinstance(box, dict):
            continue
        x, y = min(width, round(box["x"] * sx)), min(height, round(box["y"] * sy))
        face["box"] = {"x": x, "y": y, "w": min(width - x, round(box["w"] * sx)), "h": min(height - y, round(box["h"] * sy))}
        if isinstance(face.get("landmarks"), dict):
            face["landmarks"] = {k: [round(px * sx, 1), round(py * sy, 1)] for k, (px, py) in face["landmarks"].items()}


def tags_of(result: Any, follow: Any = None) -> list[dict[str, Any]]:
    """Where each face's label goes, as annotated images place it (`plan_layout`: over no other
    face or label, sized to the picture and the face): {"face": its index in `faces`, "box":
    the tag's x, y, w, h, "text"}, for the web page to draw; none for a recognizer whose result
    is not an `ImageResult` (one an application injected)."""
    from emolens.pipeline.draw import plan_layout
    from emolens.pipeline.results import ImageResult

    if not isinstance(result, ImageResult):
        return []
    layout = plan_layout(result.faces, result.orig_img.shape, labels=result.labels, bars="none", follow=follow)
    index = {id(face): i for i, face in enumerate(result.faces)}
    return [
        {"face": index[id(tag.face)], "box": dict(zip("xywh", map(int, tag.rect), strict=True)), "text": tag.text}
        for tag in sorted(layout.tags, key=lambda t: index[id(t.face)])
    ]


class Runner:
    """The recognizer, and what it takes to call it from several worker threads at once.

    Each worker thread detects with its own face detector (`emolens.serving.workers`: OpenCV's
    detectors serialise calls on one instance, so a shared one ran every face search one at a
    time); the model is shared. A recognizer without a `.detector` of its own (one a test or an
    application injects) is shared as it is, and whole-image prediction is then serialised
    unless it sets `thread_safe = True`. Decoding and crop classification (no detector; PyTorch
    and onnxruntime allow concurrent inference) always run in parallel.
    `detector` chooses the workers' detectors (`emolens.serving.workers.detector_factory`):
    None for twins of the recognizer's, a `create_detector` name, or a function making one.

    Memory: every decode first reserves its pixels from one `PixelBudget` for the process, and
    photos are detected at most `max_side` pixels on their longer side (JPEGs are decoded
    reduced, others shrunk after decoding), so neither one request nor all workers together
    hold more than the limits allow, and a 49 MP photo costs what a 4 MP one does to detect.
    """

    def __init__(self, recognizer: Any, limits: ServerLimits | None = None, detector: Any = None):
        from emolens.serving.workers import WorkerRecognizers, detector_factory

        self.recognizer = recognizer
        self.limits = limits or ServerLimits()
        self.pixels = PixelBudget(self.limits.pixel_budget)
        factory = detector_factory(recognizer, detector)
        self.workers = WorkerRecognizers(recognizer, factory)
        shared = factory is None and not getattr(recognizer, "thread_safe", False)
        self.detect_lock: AbstractContextManager = threading.Lock() if shared else nullcontext()

    def predict_image(self, upload: Upload) -> dict[str, Any]:
        """One photo: every face, read afresh."""
        return self._predict(upload, lambda recognizer, image: recognizer.predict(image, color_order="rgb", name=upload.name))

    def predict_frame(self, upload: Upload, live: LiveSession) -> dict[str, Any]:
        """One frame of a live stream (`/v1/stream`): its faces followed from the frames before
        (`live`), with track ids and smoothed scores as in `emolens webcam`, and whose bars to show."""
        if live.stream is None:  # a recognizer an application injected: each frame read afresh
            return self.predict_image(upload)
        out = self._predict(upload, live.process, live.memory)
        out["main"] = live.main()
        return out

    def _predict(self, upload: Upload, predict: Callable[[Any, np.ndarray], Any], follow: Any = None) -> dict[str, Any]:
        """Decode within the limits, `predict(this worker's recognizer, RGB image)`, and the JSON:
        faces, where the page draws their labels (`tags`: `follow`, a stream's `LayoutMemory`,
        keeps them where they were), image size and timings."""
        t0 = time.perf_counter()
        limits = self.limits
        plan = plan_decode(upload, limits.max_pixels, limits.max_side)
        with self.pixels.reserve(plan.pixels, upload.name):
            image, (width, height) = decode_bounded(plan, limits.max_side)
            t1 = time.perf_counter()
            recognizer = self.workers.get()  # this worker's own detector
            with self.detect_lock:
                t_locked = time.perf_counter()
                result = predict(recognizer, image)
            t2 = time.perf_counter()
            shape = image.shape
            del image
        faces, tags = jsonable(result.summary()), tags_of(result, follow)
        if (width, height) != (shape[1], shape[0]):
            scale_boxes(faces, width / shape[1], height / shape[0], width, height)
            scale_boxes(tags, width / shape[1], height / shape[0], width, height)
        check_finite(faces, upload.name)
        timings = {"decode_ms": _ms(t1 - t0), "lock_ms": _ms(t_locked - t1), "predict_ms": _ms(t2 - t_locked)}
        speed = getattr(result, "speed", None)
        if isinstance(speed, dict):  # the pipeline's own breakdown (preprocess, detect, classify)
            timings["pipeline_ms"] = {k: round(float(v), 3) for k, v in speed.items()}
        return {"faces": faces, "tags": tags, "image": {"width": int(width), "height": int(height)}, "timings": timings}

    def predict_crops(self, uploads: list[Upload]) -> dict[str, Any]:
        """A batch of face crops; one that cannot be decoded is reported and the others answered.

        Sizes are checked from the headers first: a crop over `max_crop_pixels`, or crops adding
        up to more than `max_pixels`, refuse the whole request (413) before anything is decoded.
        """
        t0 = time.perf_counter()
        limits = self.limits
        total = 0
        for upload in uploads:
            img = open_header(upload, limits.max_crop_pixels, what="crop")
            if img is not None:
                total += img.size[0] * img.size[1]
                img.close()
        if total > limits.max_pixels:
            raise ImageTooLarge(
                f"the {len(uploads)} crops add up to {total:,} pixels; this server decodes at most {limits.max_pixels:,} "
                "pixels per request: send smaller crops, or fewer per request"
            )
        entries: list[dict[str, Any]] = [{"index": i, "filename": u.name} for i, u in enumerate(uploads)]
        with self.pixels.reserve(total, f"{len(uploads)} crops"):
            images, good = [], []
            for i, upload in enumerate(uploads):
                try:
                    images.append(load_image(upload.data, name=upload.name))
                    good.append(i)
                except DataError as exc:
                    entries[i]["error"] = str(exc)
            t1 = time.perf_counter()
            faces = self.recognizer.predict_crops(images, color_order="rgb") if images else []
            t2 = time.perf_counter()
            del images
        if len(faces) != len(good):
            raise RuntimeError(f"recognizer returned {len(faces)} results for {len(good)} crops")
        for i, face in zip(good, faces, strict=True):
            summary = face_to_dict(face)
            check_finite([summary], uploads[i].name)
            entries[i].update({k: v for k, v in summary.items() if k not in ("index", "filename")})
        return {"crops": entries, "timings": {"decode_ms": _ms(t1 - t0), "predict_ms": _ms(t2 - t1)}}


class LiveSession:
    """What one `/v1/stream` connection carries from frame to frame, as `emolens webcam` does: a
    `FaceStream` (track ids, scores smoothed over each track, the whole frame searched every
    `detect_every` frames and known faces followed in between) and a `LayoutMemory` (whose bars
    the page shows: one person's, held through a missed frame). A frame of another size starts
    afresh. Frames of one connection come one at a time, each on whichever worker is free: the
    stream uses that worker's recognizer, and starts no thread of its own."""

    def __init__(self, recognizer: Any):
        from emolens.pipeline.draw import LayoutMemory
        from emolens.pipeline.recognizer import EmotionRecognizer
        from emolens.pipeline.stream import FaceStream

        self.stream = FaceStream(recognizer, name="camera", background=False) if isinstance(recognizer, EmotionRecognizer) else None
        self.memory = LayoutMemory()
        self.shape: tuple[int, ...] | None = None
        self.started = time.monotonic()

    def process(self, recognizer: Any, image: np.ndarray) -> Any:
        """The faces of one decoded RGB (or gray) frame, by `recognizer` (this worker's)."""
        import cv2

        assert self.stream is not None
        if image.shape != self.shape:  # the camera changed: old boxes mean nothing here
            self.stream.reset()
            self.memory.reset()  # in place: the caller plans this frame's tags with it
            self.shape = image.shape
        self.stream.recognizer = recognizer
        frame = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        result = self.stream.process(frame, time_s=time.monotonic() - self.started)
        self.memory.main_face(result.faces)
        return result

    def main(self) -> dict[str, Any]:
        """Whose bars to show: `face_id` (None: no face), `held` (that face is missed for a
        moment; the page keeps its last scores) and `followed` (the viewer chose it: `follow`)."""
        memory = self.memory
        shown = memory.held or memory.chosen is not None  # the chosen face's id is the memory's
        face_id = memory.face_id if shown else None
        return {"face_id": None if face_id is None else int(face_id), "held": memory.held, "followed": memory.pinned}

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
