"""Frame-by-frame face labelling shared by video files and live cameras: `FaceStream`.

Finding faces is the expensive part (a full Haar search of a 640x480 frame costs 25-45 ms
on a 2-core laptop-class CPU; classifying a face a few ms), so `FaceStream` searches the
whole frame only every `detect_every` frames and, in between, looks for each known face only
near where its track predicts it (`FaceDetector.detect_near`, about 2 ms). The tracker
(`emolens.faces.ByteTracker`) gives faces ids that survive missed frames, and an exponential
moving average over each track's scores keeps a steady face's label steady. Reading and
writing video files lives in `emolens.pipeline.video_io`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from emolens.errors import ConfigError, DataError
from emolens.faces import ByteTracker, Detection, iou
from emolens.pipeline.defaults import PIPELINE
from emolens.pipeline.draw import bar_choice
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import FaceResult, ImageResult
from emolens.preprocessing import to_gray


@dataclass(frozen=True)
class StreamOptions:
    """How a stream of frames is followed and drawn; video files and the webcam share it.

    detect_every: full-frame face search every this many frames (1 = every frame); a new
        face is found within that many frames. smooth: weight of the past in each tracked
        face's moving average of scores, in [0, 1); 0 turns smoothing off. bars: score bars
        on the drawn frames for "none", the "largest" face or "all" faces.
    """

    detect_every: int = PIPELINE.detect_every
    smooth: float = PIPELINE.smooth
    bars: str = PIPELINE.bars

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ConfigError(f"detect_every must be at least 1, got {self.detect_every}")
        if not 0.0 <= self.smooth < 1.0:
            raise ConfigError(f"smooth must be in [0, 1), got {self.smooth}")
        bar_choice(self.bars)  # the drawing's one list of choices and its message


class FaceStream:
    """Turns consecutive BGR frames into `ImageResult`s whose faces carry track ids.

        >>> stream = FaceStream(EmotionRecognizer(), StreamOptions(smooth=0.5))
        >>> for index, t, frame in frames:
        ...     result = stream.process(frame, index, t)   # faces with .face_id

    Keyword overrides build the options: FaceStream(rec, smooth=0) is FaceStream(rec,
    StreamOptions(smooth=0)). `name` names each result ("clip.mp4": the image column of
    the video CSV).
    """

    def __init__(self, recognizer: EmotionRecognizer, options: StreamOptions | None = None, *, name: str = "frame", **overrides: object):
        if options is not None and overrides:
            raise ConfigError("pass either StreamOptions or its fields, not both")
        self.options = StreamOptions(**overrides) if options is None else options  # type: ignore[arg-type]
        self.recognizer = recognizer
        self.name = name
        # A face lost for a moment (turned head, blur, a hand) keeps its id for a second of
        # 30 frames/s video, or three full searches when those are further apart.
        self.tracker = ByteTracker(max_missed=max(30, 3 * self.detect_every))
        self._ema: dict[int, np.ndarray] = {}
        self._count = 0

    @property
    def detect_every(self) -> int:
        return self.options.detect_every

    @property
    def smooth(self) -> float:
        return self.options.smooth

    def reset(self) -> None:
        self.tracker.reset()
        self._ema.clear()
        self._count = 0

    def _find(self, frame: np.ndarray, gray: np.ndarray) -> list[Detection]:
        detector = self.recognizer.detector
        known = self.tracker.active(max_missed=0)  # seen in the last frame: worth following
        # A face lost a moment ago may have moved anywhere: search the whole frame until it is
        # found again (or its track has coasted for `detect_every` frames).
        lost = any(0 < t.missed <= self.detect_every for t in self.tracker.tracks)
        if self._count % self.detect_every == 0 or not known or lost:
            return detector.detect(frame, gray)
        found: list[Detection] = []
        for track in known:
            det = detector.detect_near(frame, track.next_box(), gray)
            # Two tracks may settle on the same face: keep the one found first.
            if det is not None and all(iou(det.box, f.box) < 0.5 for f in found):
                found.append(det)
        return found

    def _smoothed(self, faces: list[FaceResult], live: set[int]) -> list[FaceResult]:
        labels = self.recognizer.labels
        self._ema = {k: v for k, v in self._ema.items() if k in live}
        out = []
        for face in faces:
            p = np.array([face.scores[k] for k in labels], np.float64)
            prev = self._ema.get(face.face_id)
            p = p if prev is None else self.smooth * prev + (1.0 - self.smooth) * p
            self._ema[face.face_id] = p
            out.append(FaceResult.from_proba(face.box, p, labels, face.detection_confidence, face.face_id))
        return out

    def locate(self, frame: np.ndarray, index: int | None = None, time_s: float | None = None) -> _Located:
        """First half of `process`: find and track the faces of one frame."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise DataError(f"frames must be uint8 numpy images in BGR order, got {type(frame).__name__} {getattr(frame, 'shape', '')}")
        t0 = time.perf_counter()
        gray = to_gray(frame, color_order="bgr")
        t1 = time.perf_counter()
        found = self._find(frame, gray)
        ids = self.tracker.update(found)
        kept = [(d, i) for d, i in zip(found, ids, strict=True) if i is not None]  # weak hits that continue no face: dropped
        t2 = time.perf_counter()
        index = self._count if index is None else index
        self._count += 1
        live = {t.id for t in self.tracker.tracks}
        return _Located(
            frame, gray, [d for d, _ in kept], [int(i) for _, i in kept], live, index,
            time_s if time_s is not None else 0.0, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
        )

    def classify(self, located: _Located) -> ImageResult:
        """Second half of `process`: classify the located faces, smooth, build the result.
        Calls must come in frame order (the smoothing state depends on it)."""
        t0 = time.perf_counter()
        faces = self.recognizer.classify_detections(located.gray, located.detections, located.ids)
        if self.smooth > 0:
            faces = self._smoothed(faces, located.live)
        return ImageResult(
            orig_img=located.frame, faces=faces, name=self.name, model_name=self.recognizer.model_name,
            labels=self.recognizer.labels, detector=self.recognizer.detector.name, frame=located.index, time=located.time,
            speed={"preprocess": located.ms_preprocess, "detect": located.ms_detect, "classify": (time.perf_counter() - t0) * 1e3},
        )

    def process(self, frame: np.ndarray, index: int | None = None, time_s: float | None = None) -> ImageResult:
        """One BGR (H, W, 3) or gray (H, W) uint8 frame -> its faces, with ids."""
        return self.classify(self.locate(frame, index, time_s))

    def run(self, frames: Iterable[tuple[int, float, np.ndarray]]) -> Iterator[ImageResult]:
        """`process` over (index, time, frame) items, in order, using both CPU cores: finding
        the faces of one frame overlaps with classifying those of the frame before (OpenCV
        and the classifier backends release the GIL)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emolens-classify") as pool:
            pending = None
            for index, t, frame in frames:
                located = self.locate(frame, index, t)
                if pending is not None:
                    yield pending.result()
                pending = pool.submit(self.classify, located)
            if pending is not None:
                yield pending.result()


@dataclass
class _Located:
    frame: np.ndarray
    gray: np.ndarray
    detections: list[Detection]
    ids: list[int]
    live: set[int]  # ids of all live tracks, for pruning the smoothing state
    index: int
    time: float
    ms_preprocess: float
    ms_detect: float
