"""`EmotionRecognizer`: a model and a face detector, loaded once, applied to any image.

    >>> rec = EmotionRecognizer()                      # shipped model; defaults from PIPELINE
    >>> result = rec.predict("group.jpg")              # ImageResult
    >>> [(f.label, f.box) for f in result]             # [('happy', (177, 66, 95, 95)), ...]
    >>> result.save("group_labelled.jpg")              # group_labelled-2.jpg if that exists
    >>> rec.predict(cv2.imread("group.jpg"))           # numpy arrays are BGR, as OpenCV gives them
    >>> rec.predict(np.asarray(pil_image), color_order="rgb")
    >>> results = rec.predict("photos/*.jpg")          # list[ImageResult]; predict_iter: one at a time

Faces are cut from the gray image with `emolens.preprocessing.crop_face`, using the margin and
size of the model's own `PreprocessConfig`, exactly as the training crops were made, and all
faces of an image go through the network in one batch.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError
from emolens.faces import Detection, FaceDetector, create_detector
from emolens.faces.base import find_close_up, find_in_turned_photo
from emolens.pipeline.defaults import PIPELINE
from emolens.pipeline.inputs import InputProblem, is_many, iter_inputs
from emolens.pipeline.results import FaceResult, ImageResult
from emolens.preprocessing import ColorOrder, crop_face, load_image, prepare_face, printable_path, to_gray

COLOR_ORDERS = ("bgr", "rgb")
# Tilts up to this many degrees are left as they are, and larger ones are turned back by all but
# this much: upright faces show small tilts (the median reading on FER+'s own faces is 4 degrees:
# benchmarks/alignment.py, turn 0), which the network learned, and a steady face's crop should not
# turn with each frame's reading.
LEVEL_TILT = 8.0


# predict_crops searches each crop for its face at least this big (a 48-px FER crop enlarged 3.3x;
# CenterFace then finds the face in 96% of FER-framed FER+ crops: benchmarks/crops.py), and takes a
# face only if its box is at least this share of the crop's side (CenterFace's measured framing,
# scale 1.15, puts a FER-framed face's box at 0.87 of the crop; a crop twice as loose, at 0.43).
_CROP_SEARCH_PX = 160
_CROP_FACE_SHARE = 0.3
# A photo in which the detector finds no face is searched once more as a close-up (`find_close_up`):
# shrunk or enlarged to this many pixels on its shorter side, on a border of this share of that.
_CLOSE_UP_PX = 160
_CLOSE_UP_BORDER = 0.25


def upright_turn(roll: float) -> float:
    """How far to turn a crop for a face tilted by `roll` degrees: all but `LEVEL_TILT` of it."""
    return float(np.sign(roll)) * max(0.0, abs(roll) - LEVEL_TILT)


def check_color_order(color_order: Any) -> ColorOrder:
    """`color_order` if it is "bgr" or "rgb"; else a ConfigError that says which is which."""
    if color_order not in COLOR_ORDERS:
        raise ConfigError(
            f"color_order must be 'bgr' (the default: OpenCV's cv2.imread and video frames) or 'rgb' "
            f"(numpy arrays from PIL, matplotlib, imageio or scikit-image), got {color_order!r}"
        )
    return color_order


def _as_array(image: Any, color_order: ColorOrder) -> tuple[np.ndarray, ColorOrder, str | None]:
    """Any supported input -> (numpy image as stored, its colour order, its path if any).

    Files, bytes and PIL images say their own order (RGB once decoded); only a bare numpy
    array needs `color_order`, BGR by default like OpenCV, fer, DeepFace and Ultralytics.
    """
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


def _is_many(images: Any) -> bool:
    """A list, tuple or iterator of images, a folder, or a glob pattern: answered with a list."""
    if isinstance(images, str | Path):
        return is_many(images)
    return isinstance(images, list | tuple | Iterator)


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
        or a loaded model. backend: "torch", "onnx" or "auto" (onnx where onnxruntime is
        installed; an .onnx file always runs on onnxruntime).
    detector: "haar" (offline), "yunet:MODEL.onnx", "mediapipe", or a FaceDetector.
    min_face_size: smallest face side in pixels to look for; detector_threshold: drop faces
        the detector is less sure of (0-1); detector_options go to the detector as well
        (min_neighbors, scale_factor). tta: "none", "flip" or "tencrop". align: turn each face
        upright by its landmarks before classifying it, where the detector finds them (`crop`).
        close_up: search an image in which the detector finds no face once more for one face
        filling it (`find_faces`). turned_photos: search a still image again turned a quarter or
        half turn where its faces lie that way, or none was found, or none is sure (`find_photo_faces`).
    threads: CPU threads for the classifier (PyTorch: process-wide); None keeps the default.
    compile: torch backend through torch.compile, for large batches (about 2x after 10-40 s).
    Defaults not given here come from `emolens.pipeline.defaults.PIPELINE`.

    Numpy arrays are BGR, as OpenCV reads and films them; pass color_order="rgb" for arrays
    from PIL, matplotlib, imageio or scikit-image. Paths, bytes and PIL images need nothing.
    """

    def __init__(
        self, model: Any = None, detector: str | FaceDetector = PIPELINE.detector, backend: str = PIPELINE.backend, *,
        device: str = "auto", tta: str = "none", min_face_size: int | None = PIPELINE.min_face_size,
        detector_threshold: float | None = None, detector_options: dict[str, Any] | None = None,
        threads: int | None = None, compile: bool = False, align: bool = PIPELINE.align,
        close_up: bool = PIPELINE.close_up, turned_photos: bool = PIPELINE.turned_photos,
    ):
        from emolens.runtime import create_backend

        self.backend = create_backend(model, backend, device=device, tta=tta, threads=threads, compile=compile)
        self.config = self.backend.config
        self.labels: tuple[str, ...] = tuple(self.config.labels)
        # None values are left to the detector's own defaults (create_detector drops them).
        options = {"min_face_size": min_face_size, "threshold": detector_threshold, **(detector_options or {})}
        self.detector = create_detector(detector, **options)
        self.align = bool(align)
        self.close_up = bool(close_up)
        self.turned_photos = bool(turned_photos)

    @classmethod
    def of(cls, recognizer: Any = None, **options: Any) -> EmotionRecognizer:
        """The one way every entry point (predict_images, process_video, run_webcam, ...) gets
        its recognizer: `recognizer` itself when it is one (used as it is), else one built
        for that model (a path, a loaded model, None: the shipped one) with `options`, the
        constructor's keywords, over the PIPELINE defaults.

            >>> rec = EmotionRecognizer.of(None, threads=PIPELINE.stream_threads)  # what video does
            >>> EmotionRecognizer.of(rec) is rec
            True
        """
        if isinstance(recognizer, cls) or all(hasattr(recognizer, a) for a in ("predict", "classify_detections", "labels")):
            return recognizer
        return cls(recognizer, **options)

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
        aligned = "" if self.align else ", align=False"
        return f"EmotionRecognizer(model={self.model_name!r}, backend={self.backend.name!r}, detector={self.detector!r}{aligned})"

    def model_info(self) -> dict[str, Any]:
        """Name, version, labels, input geometry and metrics, from the model's own config."""
        c, p = self.config, self.config.preprocess
        return {
            "name": self.model_name, "version": c.version, "arch": c.arch, "labels": list(self.labels),
            "input_size": p.input_size, "image_size": p.image_size, "face_margin": p.face_margin,
            "framing": asdict(p.framing_for(self.detector.name)), "align": self.align,
            "temperature": c.temperature, "metrics": dict(c.metrics), "license": c.license,
            "backend": self.backend.name, "source": self.backend.source, "detector": self.detector.name,
        }

    def find_faces(self, bgr: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        """The detector's faces in a whole image or frame, largest first; where it finds none
        and `close_up` is on, the face that fills the image, if there is one (`find_close_up`:
        a face cropped elsewhere, a close selfie, a webcam at arm's length)."""
        found = self.detector.detect(bgr, gray)
        if found or not self.close_up:
            return found
        return find_close_up(self.detector, bgr, gray, side=_CLOSE_UP_PX, border=_CLOSE_UP_BORDER)[:1]

    def find_photo_faces(self, bgr: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        """`find_faces` for a still image, which may be the wrong way round: with `turned_photos`,
        searched again turned where its faces lie a quarter or half turn from upright, or none was
        found, or none is sure (`find_in_turned_photo`). Video frames use `find_faces`: a camera films upright."""
        found = self.find_faces(bgr, gray)
        return find_in_turned_photo(self.detector, bgr, found) if self.turned_photos else found

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (B, C) for uint8 face crops (B, S, S) made by crop_face/prepare_face."""
        faces = np.asarray(faces)
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.backend.predict_proba(faces)

    def crop(
        self, gray: np.ndarray, faces: Sequence[Detection | tuple[int, int, int, int]], rolls: Sequence[float] | None = None,
    ) -> np.ndarray:
        """(B, S, S) uint8 crops of `faces` (detections, or bare boxes) from a gray image (or a BGR
        one, of which only the crops are made gray: the same pixels), with the model's geometry:
        framed as this detector's boxes need, and turned upright by each detection's tilt (its
        `roll`, or `rolls` where given: a video track's moving average) unless `align` is off."""
        p = self.config.preprocess
        if not faces:
            return np.zeros((0, p.image_size, p.image_size), np.uint8)
        framing = p.framing_for(self.detector.name)  # where this detector's boxes sit on a face
        if rolls is None:
            rolls = [face.roll if isinstance(face, Detection) else 0.0 for face in faces]
        crops = []
        for face, roll in zip(faces, rolls, strict=True):
            box = face.box if isinstance(face, Detection) else face
            crops.append(crop_face(gray, box, framing, p.image_size, roll=upright_turn(roll) if self.align else 0.0))
        return np.stack(crops)

    def classify_detections(
        self, gray: np.ndarray, detections: list[Detection], ids: list[int] | None = None, rolls: Sequence[float] | None = None,
    ) -> list[FaceResult]:
        """Crop (`crop`, with `rolls` if given) and classify already-found faces of one gray (or
        BGR) image, in one batch. Each result carries the face's tilt (`rolls`, else each
        detection's `roll`) and the detection's landmarks, where the detector finds them."""
        if rolls is None:
            rolls = [d.roll for d in detections]
        proba = self.classify(self.crop(gray, detections, rolls))
        return [
            self._face_result(d.box, p, d, roll, None if ids is None else ids[i])
            for i, (d, p, roll) in enumerate(zip(detections, proba, rolls, strict=True))
        ]

    def _face_result(
        self, box: tuple[int, int, int, int], proba: np.ndarray, det: Detection | None, roll: float | None = None, face_id: int | None = None,
    ) -> FaceResult:
        """One face's result: its box and scores, and where a detector found it, its confidence, its
        tilt (`roll`, else the detection's own; None without landmarks) and its landmarks."""
        if det is None:
            return FaceResult.from_proba(box, proba, self.labels, face_id=face_id)
        tilt = None if det.eyes is None else (det.roll if roll is None else roll)
        return FaceResult.from_proba(box, proba, self.labels, det.confidence, face_id, tilt=tilt, landmarks=det.landmarks)

    def predict(
        self, images: Any, *, color_order: ColorOrder = "bgr", name: str | None = None, recursive: bool = False, crops: bool = False,
    ) -> Any:
        """Every face in one image -> ImageResult; in many -> list[ImageResult], in order.

        One image: a path, bytes, a PIL image, or a numpy array of any size, gray (H, W) or
        colour (H, W, 3|4) in `color_order`: "bgr" (default; cv2.imread, video frames) or
        "rgb" (PIL, matplotlib, imageio, scikit-image). Many: a list or iterator of those, a
        folder (its images; recursive=True: subfolders too) or a glob ("photos/*.jpg").

        crops=True: each image is one face, already cropped (a dataset's faces, another tool's
        crops): it gets one face, whose box is the whole image, found again and cut as in
        `predict_crops` (read as it comes where the detector finds no face in it).

        One image that cannot be read raises DataError naming it. Among many, it gives an
        error result instead (`result.error` says why, with a warning) and the rest go on.
        For large folders, `predict_iter` yields the results one at a time.
        """
        check_color_order(color_order)
        if _is_many(images):
            return list(self.predict_iter(images, color_order=color_order, recursive=recursive, crops=crops))
        return self._predict_one(images, color_order, name, crops)

    __call__ = predict

    def predict_iter(
        self, images: Any, *, color_order: ColorOrder = "bgr", recursive: bool = False, crops: bool = False,
    ) -> Iterator[ImageResult]:
        """`predict` over many images, one ImageResult at a time (memory stays that of one image).

            >>> for result in rec.predict_iter("shoot/**/*.jpg"):
            ...     print(result.name, [f.label for f in result])
        """
        check_color_order(color_order)
        items: Iterable[Any] = images if _is_many(images) and not isinstance(images, str | Path) else [images]
        for i, item in enumerate(iter_inputs(items, recursive)):
            if isinstance(item, InputProblem):
                yield self._failed(item.name, str(item))
                continue
            shown = printable_path(item.name) if isinstance(item, Path) else f"image {i}"
            try:
                yield self._predict_one(item, color_order, shown, crops)
            except DataError as exc:  # a file's message names it already; an array is named by its place
                if isinstance(item, Path):
                    yield self._failed(shown, str(exc), printable_path(item))
                else:
                    yield self._failed(shown, f"{shown}: {exc}")

    def _failed(self, name: str, error: str, path: str | None = None) -> ImageResult:
        warnings.warn(f"skipped {error}", stacklevel=3)  # never a silent skip
        return ImageResult.failed(name, error, path=path, model_name=self.model_name, labels=self.labels)

    def _predict_one(self, image: Any, color_order: ColorOrder, name: str | None, crops: bool = False) -> ImageResult:
        t0 = time.perf_counter()
        arr, order, path = _as_array(image, color_order)
        gray = to_gray(arr, color_order=order)
        bgr = _drawable(arr, gray, order)
        t1 = time.perf_counter()
        if crops:
            crop, det = self._crop_of(bgr, gray, reframe=True)
            t2 = time.perf_counter()
            whole = (0, 0, gray.shape[1], gray.shape[0])
            faces = [self._face_result(whole, self.classify(crop[None])[0], det)]
        else:
            detections = self.find_photo_faces(bgr, gray)
            t2 = time.perf_counter()
            faces = self.classify_detections(gray, detections)
        t3 = time.perf_counter()
        return ImageResult(
            orig_img=bgr, faces=faces, path=path, name=name or (printable_path(Path(path).name) if path else "image"),
            model_name=self.model_name, labels=self.labels, detector=self.detector.name,
            speed={"preprocess": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "classify": (t3 - t2) * 1e3},
        )

    def predict_crops(self, images: list[Any], *, color_order: ColorOrder = "bgr", reframe: bool = True) -> list[FaceResult]:
        """Faces that are already cropped (paths, bytes, PIL or arrays), classified in one batch.

        Arrays are BGR unless color_order="rgb", as in `predict`. reframe (default): the detector
        looks for the face in each crop, and the face it finds is cut as `predict` cuts faces
        (the measured framing, turned upright), so that a crop framed tighter or looser than
        FER-2013's reads as a training face does (`_reframed`); where it finds none, and with
        reframe=False, the crop is centre-squared and resized like a dataset image (`prepare_face`).
        Each result's box is the whole input; detection_confidence is the detector's where it
        found the face, else None. Raises DataError naming the item that cannot be read.
        """
        check_color_order(color_order)
        crops, boxes, found = [], [], []
        for i, img in enumerate(images):
            try:
                arr, order, _ = _as_array(img, color_order)
                gray = to_gray(arr, color_order=order)
            except DataError as exc:
                raise DataError(f"crop {i}: {exc}") from None
            crop, det = self._crop_of(_drawable(arr, gray, order), gray, reframe)
            crops.append(crop)
            boxes.append((0, 0, gray.shape[1], gray.shape[0]))
            found.append(det)
        if not crops:
            return []
        proba = self.classify(np.stack(crops))
        return [self._face_result(box, p, det) for box, p, det in zip(boxes, proba, found, strict=True)]

    def _crop_of(self, bgr: np.ndarray, gray: np.ndarray, reframe: bool) -> tuple[np.ndarray, Detection | None]:
        """An already-cropped face as the network reads it, and the face reframing found in it
        (else None: centre-squared and resized like a dataset image)."""
        face, det = self._reframed(bgr, gray) if reframe else (None, None)
        if face is None:
            return prepare_face(gray, self.config.preprocess), None
        return face, det

    def _reframed(self, bgr: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray | None, Detection | None]:
        """The face of a crop, cut as photos' faces are, and its detection; (None, None) when the
        detector finds no face of at least `_CROP_FACE_SHARE` of the crop's side. The crop is
        searched enlarged to `_CROP_SEARCH_PX` (a 48-px FER crop is near most detectors' smallest face)."""
        faces = find_close_up(self.detector, bgr, gray, side=_CROP_SEARCH_PX, border=0.0, shrink=False, min_share=_CROP_FACE_SHARE)
        if not faces:
            return None, None
        return self.crop(gray, faces[:1])[0], faces[0]  # the largest: detectors list faces largest first
