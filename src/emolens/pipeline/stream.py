"""Frame-by-frame processing shared by video files and live cameras.

Finding faces is the expensive part (a full Haar search of a 640x480 frame costs 25-45 ms
on a 2-core laptop-class CPU; classifying a face a few ms), so `FaceStream` searches the
whole frame only every `detect_every` frames and, in between, looks for each known face only
near where it was (`FaceDetector.detect_near`, about 2 ms). An IoU tracker gives faces stable ids, and an
optional exponential moving average smooths each face's scores over time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.errors import ConfigError, DataError
from emolens.faces import Detection, IoUTracker, iou
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import FaceResult, ImageResult
from emolens.preprocessing import to_gray


class FaceStream:
    """Turns consecutive BGR frames into `ImageResult`s whose faces carry track ids.

    detect_every: full-frame search every this many frames (1 = every frame); new faces are
        found within that many frames. smooth: weight of the past in the moving average of each
        face's scores, in [0, 1); 0 turns smoothing off, 0.6 steadies a live view.
    """

    def __init__(self, recognizer: EmotionRecognizer, *, detect_every: int = 5, smooth: float = 0.0):
        if detect_every < 1:
            raise ConfigError(f"detect_every must be at least 1, got {detect_every}")
        if not 0.0 <= smooth < 1.0:
            raise ConfigError(f"smooth must be in [0, 1), got {smooth}")
        self.recognizer = recognizer
        self.detect_every = int(detect_every)
        self.smooth = float(smooth)
        # A face lost for a moment (turned head, blur) keeps its id for ~3 full searches.
        self.tracker = IoUTracker(iou_threshold=0.3, max_missed=3 * self.detect_every)
        self._ema: dict[int, np.ndarray] = {}
        self._count = 0

    def reset(self) -> None:
        self.tracker.reset()
        self._ema.clear()
        self._count = 0

    def _find(self, frame: np.ndarray, gray: np.ndarray) -> list[Detection]:
        detector = self.recognizer.detector
        known = self.tracker.active(max_missed=self.detect_every)
        if self._count % self.detect_every == 0 or not known:
            return detector.detect(frame, gray)
        found: list[Detection] = []
        for track in known:
            det = detector.detect_near(frame, track.box, gray)
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
        dets = self._find(frame, gray)
        ids = self.tracker.update(dets)
        t2 = time.perf_counter()
        index = self._count if index is None else index
        self._count += 1
        live = {t.id for t in self.tracker.tracks}
        return _Located(frame, gray, dets, ids, live, index, time_s if time_s is not None else 0.0, (t1 - t0) * 1e3, (t2 - t1) * 1e3)

    def classify(self, located: _Located) -> ImageResult:
        """Second half of `process`: classify the located faces, smooth, build the result.
        Calls must come in frame order (the smoothing state depends on it)."""
        t0 = time.perf_counter()
        faces = self.recognizer.classify_detections(located.gray, located.detections, located.ids)
        if self.smooth > 0:
            faces = self._smoothed(faces, located.live)
        return ImageResult(
            orig_img=located.frame, faces=faces, name=f"frame {located.index}", model_name=self.recognizer.model_name,
            labels=self.recognizer.labels, frame=located.index, time=located.time,
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


@dataclass
class VideoSource:
    """An opened cv2.VideoCapture with what we know about it."""

    capture: object
    label: str
    fps: float  # frames per second the source reports (30 when it reports none)
    frame_count: int  # 0 when unknown (cameras, streams)
    width: int
    height: int

    def release(self) -> None:
        self.capture.release()


def open_source(source: str | int, *, camera: bool = False) -> VideoSource:
    """Open a video file, a camera index or a stream URL, with a clear error when it fails."""
    import cv2

    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        index = int(source)
        label = f"camera {index}"
        # OpenCV logs its own warnings for a missing camera; our error below says it better.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            cap = cv2.VideoCapture(index)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            raise DataError(
                f"{label} could not be opened: no camera with that number, or it is in use by another program. "
                "Try --camera 0, check that /dev/video* exists, or pass a video file or stream URL instead"
            )
    else:
        label = str(source)
        is_url = "://" in label
        if not is_url:
            path = Path(label)
            if not path.exists():
                raise DataError(f"{label}: no such video file")
            if path.is_dir():
                raise DataError(f"{label}: is a folder, expected a video file")
            if path.stat().st_size == 0:
                raise DataError(f"{label}: empty file (0 bytes); expected a video")
        cap = cv2.VideoCapture(label)
        if not cap.isOpened():
            what = "stream could not be opened (check the URL and that it is reachable)" if is_url else "not a video OpenCV can read"
            raise DataError(f"{label}: {what}; expected a video file (mp4, avi, mov, mkv, ...)" if not is_url else f"{label}: {what}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if fps and 0 < fps < 1000 else 30.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return VideoSource(cap, label, fps, max(0, count), width, height)


def iter_frames(src: VideoSource, *, every: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in s, BGR frame) for every `every`-th frame; skipped frames are not decoded
    to images (`grab` only). Stops at the end, after `max_frames` yielded frames, or on a read error."""
    if every < 1:
        raise ConfigError(f"every must be at least 1, got {every}")
    cap, index, yielded = src.capture, 0, 0
    while max_frames is None or yielded < max_frames:
        if index % every:
            if not cap.grab():
                return
            index += 1
            continue
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield index, index / src.fps, frame
        index += 1
        yielded += 1


def prefetch(frames: Iterator, size: int = 8) -> Iterator:
    """Run a frame iterator in a background thread, `size` items ahead.

    OpenCV releases the GIL while it decodes, so on a 2-core machine decoding the next frames
    overlaps with detecting and classifying this one.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            failure.append(exc)
        finally:
            q.put(done)

    thread = threading.Thread(target=work, name="emolens-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except Exception:
                thread.join(0.05)


class BackgroundWriter:
    """cv2.VideoWriter fed from a background thread, so encoding overlaps with processing."""

    def __init__(self, path: Path, fourcc: str, fps: float, size: tuple[int, int], queue_size: int = 8):
        import queue
        import threading

        import cv2

        self.path = path
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self._writer.isOpened():
            raise DataError(f"{path}: OpenCV cannot write {fourcc} video here; rerun with --no-video")
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._work, name="emolens-encode", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (frame := self._q.get()) is not None:
            self._writer.write(frame)

    def write(self, frame: np.ndarray) -> None:
        self._q.put(frame)

    def release(self) -> None:
        self._q.put(None)
        self._thread.join()
        self._writer.release()
