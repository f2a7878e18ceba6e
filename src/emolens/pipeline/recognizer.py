"""`EmotionRecognizer`: a model and a face detector, loaded once, applied to any image.

    >>> rec = EmotionRecognizer()                      # shipped model, Haar detector, PyTorch
    >>> result = rec.predict("group.jpg")              # ImageResult
    >>> [(f.label, f.box) for f in result]             # [('happy', (177, 66, 95, 95)), ...]
    >>> result.save("group_labelled.jpg")

Faces are cut from the gray image with `emolens.preprocessing.crop_face`, using the margin and
size of the model's own `PreprocessConfig`, exactly as the training crops were made, and all
faces of an image go through the network in one batch.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import DataError
from emolens.faces import Detection, FaceDetector, create_detector
from emolens.pipeline.results import FaceResult, ImageResult
from emolens.preprocessing import ColorOrder, crop_face, load_image, prepare_face, to_gray


def _as_array(image: Any, color_order: ColorOrder) -> tuple[np.ndarray, ColorOrder, str | None]:
    """Any supported input -> (numpy image as stored, its colour order, its path if any)."""
    if isinstance(image, str | Path):
        return load_image(image), "rgb", str(image)
    if isinstance(image, bytes):
        return load_image(image), "rgb", None
    if isinstance(image, np.ndarray):
        return image, color_order, None
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return np.asarray(image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")), "rgb", None
    raise DataError(f"expected an image path, bytes, PIL image or numpy array, got {type(image).__name__}")


def _drawable(arr: np.ndarray, gray: np.ndarray, color_order: ColorOrder) -> np.ndarray:
    """(H, W, 3) uint8 BGR view of the input for drawing; gray inputs stay gray-looking."""
    import cv2

    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    rgb = arr[:, :, :3]
    if rgb.dtype == np.uint16:
        rgb = (rgb / 257.0).round().astype(np.uint8)
    elif rgb.dtype != np.uint8:  # floats in [0, 1]; to_gray has already checked the range
        rgb = (rgb * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1] if color_order == "rgb" else rgb)


class EmotionRecognizer:
    """Find faces and read their emotions.

    model: None or "default" (the shipped model), a .safetensors / .onnx file, a run folder,
        or a loaded model. backend: "torch" or "onnx" (an .onnx file always runs on onnxruntime).
    detector: "haar" (default, offline), "yunet:MODEL.onnx", "mediapipe", or a FaceDetector.
    min_face_size: smallest face side in pixels to look for; detector_options go to the
        detector (threshold, min_neighbors, scale_factor). tta: "none", "flip" or "tencrop".
        threads: CPU threads for the classifier (PyTorch: process-wide); None keeps the default.
        compile: torch backend through torch.compile, for large batches (about 2x after 10-40 s).
    """

    def __init__(
        self, model: Any = None, detector: str | FaceDetector = "haar", backend: str = "torch", *,
        device: str = "cpu", tta: str = "none", min_face_size: int | None = None, detector_options: dict[str, Any] | None = None,
        threads: int | None = None, compile: bool = False,
    ):
        from emolens.runtime import create_backend

        self.backend = create_backend(model, backend, device=device, tta=tta, threads=threads, compile=compile)
        self.config = self.backend.config
        self.labels: tuple[str, ...] = tuple(self.config.labels)
        options = dict(detector_options or {})
        if min_face_size is not None:
            options["min_face_size"] = min_face_size
        self.detector = create_detector(detector, **options)

    # Safe to call from several threads at once: detectors lock around their native calls,
    # and PyTorch and onnxruntime inference are re-entrant. (FaceStream, which keeps tracking
    # state, is not: use one per stream.)
    thread_safe = True

    @property
    def model_name(self) -> str:
        if self.config.name:
            return self.config.name
        return self.config.arch if self.backend.source.startswith("<") else Path(self.backend.source).stem

    def __repr__(self) -> str:
        return f"EmotionRecognizer(model={self.model_name!r}, backend={self.backend.name!r}, detector={self.detector!r})"

    def model_info(self) -> dict[str, Any]:
        """Name, version, labels, input geometry and metrics, from the model's own config."""
        c, p = self.config, self.config.preprocess
        return {
            "name": self.model_name, "version": c.version, "arch": c.arch, "labels": list(self.labels),
            "input_size": p.input_size, "image_size": p.image_size, "face_margin": p.face_margin,
            "framing": asdict(p.framing_for(self.detector.name)),
            "temperature": c.temperature, "metrics": dict(c.metrics), "license": c.license,
            "backend": self.backend.name, "source": self.backend.source, "detector": self.detector.name,
        }

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (B, C) for uint8 face crops (B, S, S) made by crop_face/prepare_face."""
        faces = np.asarray(faces)
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.backend.predict_proba(faces)

    def crop(self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(B, S, S) uint8 crops of `boxes` from a gray image, with the model's geometry."""
        p = self.config.preprocess
        if not boxes:
            return np.zeros((0, p.image_size, p.image_size), np.uint8)
        framing = p.framing_for(self.detector.name)  # where this detector's boxes sit on a face
        return np.stack([crop_face(gray, box, framing, p.image_size) for box in boxes])

    def classify_detections(self, gray: np.ndarray, detections: list[Detection], ids: list[int] | None = None) -> list[FaceResult]:
        """Crop and classify already-found faces of one gray image, in one batch."""
        proba = self.classify(self.crop(gray, [d.box for d in detections]))
        return [
            FaceResult.from_proba(d.box, p, self.labels, d.confidence, None if ids is None else ids[i])
            for i, (d, p) in enumerate(zip(detections, proba, strict=True))
        ]

    def predict(self, image: Any, *, color_order: ColorOrder = "rgb", name: str | None = None) -> ImageResult:
        """Every face in one image. image: a path, bytes, a PIL image, or a numpy array of any
        size, gray (H, W) or colour (H, W, 3|4) in `color_order` ("rgb", or "bgr" for OpenCV)."""
        t0 = time.perf_counter()
        arr, order, path = _as_array(image, color_order)
        gray = to_gray(arr, color_order=order)
        bgr = _drawable(arr, gray, order)
        t1 = time.perf_counter()
        detections = self.detector.detect(bgr, gray)
        t2 = time.perf_counter()
        faces = self.classify_detections(gray, detections)
        t3 = time.perf_counter()
        return ImageResult(
            orig_img=bgr, faces=faces, path=path, name=name or (Path(path).name if path else "image"),
            model_name=self.model_name, labels=self.labels,
            speed={"preprocess": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "classify": (t3 - t2) * 1e3},
        )

    __call__ = predict

    def predict_crops(self, images: list[Any], *, color_order: ColorOrder = "rgb") -> list[FaceResult]:
        """Faces that are already cropped (paths, bytes, PIL or arrays), classified in one batch.

        Each crop is centre-squared and resized like a dataset image (`prepare_face`); its box
        is the whole input. Raises DataError naming the item that cannot be read.
        """
        crops, boxes = [], []
        for i, img in enumerate(images):
            try:
                arr, order, _ = _as_array(img, color_order)
                gray = to_gray(arr, color_order=order)
            except DataError as exc:
                raise DataError(f"crop {i}: {exc}") from None
            crops.append(prepare_face(gray, self.config.preprocess))
            boxes.append((0, 0, gray.shape[1], gray.shape[0]))
        if not crops:
            return []
        proba = self.classify(np.stack(crops))
        return [FaceResult.from_proba(b, p, self.labels) for b, p in zip(boxes, proba, strict=True)]
