"""Frame-by-frame face labelling shared by video files and live cameras: `FaceStream`.

Finding faces is the expensive part (a full search of a 640x480 frame costs 25-65 ms on a
2-core laptop-class CPU; classifying a face a few ms), so `FaceStream` searches the whole
frame only every `detect_every` frames and, in between, looks for each known face only near
where its track predicts it (`FaceDetector.detect_near`, 2-4 ms). With a detector
that two threads may call at once (`FaceDetector.reentrant`: CenterFace on onnxruntime), the
whole-frame search of frame k runs in a thread of its own while the next frames follow the
known faces; its new faces join at frame k + detect_every // 2, looked for again around where
they were (a fixed lag, so a run gives the same result however the threads are scheduled).
While no face is followed, or one was just lost, every frame is searched whole, at once. The
tracker (`emolens.faces.ByteTracker`) gives faces ids that survive missed frames, and an exponential
moving average over each track's scores keeps a steady face's label steady. Reading and
writing video files lives in `emolens.pipeline.video_io`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from emolens.errors import ConfigError, DataError
from emolens.faces import ByteTracker, Detection, iou
from emolens.faces.base import turn_whole, wrap_degrees
from emolens.pipeline.defaults import PIPELINE
from emolens.pipeline.draw import bar_choice
from emolens.pipeline.recognizer import EmotionRecognizer
from emolens.pipeline.results import FaceResult, ImageResult
from emolens.preprocessing import to_gray

# Tracked faces tilted this many degrees or more are followed in a window turned upright (`FaceStream._near`).
_TURNED_FOLLOW = 30.0
# `smooth` is the weight of the past per frame of 30 frames/s video (where it was chosen:
# PIPELINE.smooth). Frames closer together than this (a phone's 60 frames/s) take the same weight
# per 1/30 s, so their noise, which comes with each frame, is damped as much a second: on the 60
# frames/s clips of benchmarks/smoothing.py --fps 60 the bars moved 0.95 a second with the weight
# per frame, 0.50 with this (0.45 at 30 frames/s), and the label changed 0.44 and 0.24 times a
# second (both at commit b190d69, labels as the top score; docs/video.md, "60 frames a second"). Frames further apart (the web page's 10 a second,
# --every) keep the weight per frame, so a steady face stays steady where frames are few.
_SMOOTH_STEP_S = 1.0 / 30.0


def past_weight(smooth: float, dt: float) -> float:
    """Weight of the past in a moving average updated `dt` seconds after its last value:
    `smooth` a frame, and at least `smooth` per `_SMOOTH_STEP_S` (dt <= 0: times unknown, per frame)."""
    return smooth ** (dt / _SMOOTH_STEP_S) if 0.0 < dt < _SMOOTH_STEP_S else smooth


def new_tracker(detect_every: int, fps: float | None = None) -> ByteTracker:
    """The tracker a stream gives its faces ids with (`benchmarks/detection.py --follow` too)."""
    # A face lost for a moment (turned head, blur, a hand) keeps its id for a second (30 frames,
    # more at a higher frame rate `fps`), or three full searches when those are further apart.
    return ByteTracker(max_missed=max(PIPELINE.frames_at(30, fps), 3 * detect_every))


ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class StreamOptions:
    """How a stream of frames is followed and drawn; video files and the webcam share it.

    detect_every: full-frame face search every this many frames (1 = every frame); a new
        face is found within that many frames (1.5 times as many where the search runs in
        the background: `FaceDetector.reentrant`). smooth: weight of the past in each tracked
        face's moving averages of scores and of tilt (by which its crop is turned upright), in
        [0, 1); 0 turns smoothing off. bars: score bars on the drawn frames for "none", the
        "largest" face or "all" faces. rotate: turn every frame clockwise by 90, 180 or 270 degrees
        before anything else (0: as it comes), for a video filmed sideways whose file lost its
        rotation (OpenCV applies the rotation a file records) or a camera mounted on its side.
        label_margin: a tracked face keeps its label until another emotion's score leads it by
        this much, in [0, 1); 0: the top score's label in every frame.
    """

    detect_every: int = PIPELINE.detect_every
    smooth: float = PIPELINE.smooth
    bars: str = PIPELINE.bars
    rotate: int = 0
    label_margin: float = PIPELINE.label_margin

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ConfigError(f"detect_every must be at least 1, got {self.detect_every}")
        if not 0.0 <= self.smooth < 1.0:
            raise ConfigError(f"smooth must be in [0, 1), got {self.smooth}")
        if not 0.0 <= self.label_margin < 1.0:
            raise ConfigError(f"label_margin must be in [0, 1), got {self.label_margin}")
        bar_choice(self.bars)  # the drawing's one list of choices and its message
        if self.rotate not in ROTATIONS:
            raise ConfigError(f"rotate must be one of {', '.join(map(str, ROTATIONS))} degrees clockwise, got {self.rotate}")


class FaceStream:
    """Turns consecutive BGR frames into `ImageResult`s whose faces carry track ids.

        >>> stream = FaceStream(EmotionRecognizer(), StreamOptions(smooth=0.5))
        >>> for index, t, frame in frames:
        ...     result = stream.process(frame, index, t)   # faces with .face_id

    Keyword overrides build the options: FaceStream(rec, smooth=0) is FaceStream(rec,
    StreamOptions(smooth=0)). `name` names each result ("clip.mp4": the image column of
    the video CSV). `fps`: frames processed a second, where known (a video file's rate; divided
    by N when every N-th frame is processed), so that a lost face keeps its id for a second at 60
    frames/s too. `background=False` runs every whole-frame search in the calling thread (a
    server, whose workers are its bound on concurrent work, starts no thread of its own).
    """

    def __init__(
        self, recognizer: EmotionRecognizer, options: StreamOptions | None = None, *, name: str = "frame", background: bool = True,
        fps: float | None = None, **overrides: object,
    ):
        if options is not None and overrides:
            raise ConfigError("pass either StreamOptions or its fields, not both")
        self.options = StreamOptions(**overrides) if options is None else options  # type: ignore[arg-type]
        self.recognizer = recognizer
        self.name = name
        self.background = background
        self.tracker = new_tracker(self.detect_every, fps)
        self._ema: dict[int, np.ndarray] = {}
        self._rolls: dict[int, float] = {}  # each track's moving average of its tilt (degrees)
        self._updated: dict[int, float] = {}  # each track's time (s) at its averages' last update
        self._shown: dict[int, str] = {}  # each track's label in its last frame
        self._seen_rolls: dict[int, float] = {}  # each track's tilt as last found (by `locate`: no thread reads it late)
        self._count = 0
        self._searcher: ThreadPoolExecutor | None = None  # the background search's thread, made on first use
        self._pending: _Search | None = None

    @property
    def detect_every(self) -> int:
        return self.options.detect_every

    @property
    def _lag(self) -> int:
        """Frames between a whole-frame search started in the background and the frame its new
        faces join: half the interval, time enough for the search to finish beside the
        following (one whole-frame search costs a few frames' work) and a new face labelled
        within 1.5 intervals."""
        return max(1, self.detect_every // 2)

    @property
    def smooth(self) -> float:
        return self.options.smooth

    def reset(self) -> None:
        self.tracker.reset()
        self._ema.clear()
        self._rolls.clear()
        self._updated.clear()
        self._shown.clear()
        self._seen_rolls.clear()
        self._count = 0
        self._pending = None

    def _find(self, frame: np.ndarray, gray: np.ndarray) -> list[Detection]:
        known = self.tracker.active(max_missed=0)  # seen in the last frame: worth following
        # A face lost a moment ago may have moved anywhere: search the whole frame until it is
        # found again (or its track has coasted for `detect_every` frames).
        lost = any(0 < t.missed <= self.detect_every for t in self.tracker.tracks)
        due = self._count % self.detect_every == 0
        searcher = self._search_thread()
        if not known or lost or (due and searcher is None):
            self._pending = None  # this search supersedes one still running
            return self.recognizer.find_faces(frame, gray)
        found = self._follow(frame, gray, known)
        if due and self._pending is None and searcher is not None:
            boxes = [d.box for d in found]
            self._pending = _Search(self._count, searcher.submit(self.recognizer.find_faces, frame, gray), boxes)
        if self._pending is not None and self._count - self._pending.frame >= self._lag:
            found += self._new_faces(frame, gray, found)
        return found

    def _search_thread(self) -> ThreadPoolExecutor | None:
        """The thread whole frames are searched in, for a detector two threads may share; else None."""
        if self._searcher is None and self.background and self.detect_every > 1 and getattr(self.recognizer.detector, "reentrant", False):
            self._searcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emolens-search")
        return self._searcher

    def close(self) -> None:
        """Stop the background search thread (a later frame starts it again)."""
        searcher, self._searcher, self._pending = self._searcher, None, None
        if searcher is not None:
            searcher.shutdown(wait=True, cancel_futures=True)

    def _follow(self, frame: np.ndarray, gray: np.ndarray, tracks: list) -> list[Detection]:
        found: list[Detection] = []
        for track in tracks:
            det = self._near(frame, gray, track.next_box(), self._seen_rolls.get(track.id, 0.0))
            # Two tracks may settle on the same face: keep the one found first.
            if det is not None and all(iou(det.box, f.box) < 0.5 for f in found):
                found.append(det)
        return found

    def _near(self, frame: np.ndarray, gray: np.ndarray | None, box: tuple[int, int, int, int], roll: float) -> Detection | None:
        """The face near `box`; one tilted by `_TURNED_FOLLOW` degrees or more is looked for in the
        window turned upright by its tilt first, where the detector finds it more surely and reads
        its box and tilt better (`detect_near_turned`), then as the window lies."""
        detector = self.recognizer.detector
        if abs(roll) >= _TURNED_FOLLOW:
            turned = detector.detect_near_turned(frame, box, -roll, gray)
            if turned is not None:
                return turned
        return detector.detect_near(frame, box, gray)

    def _new_faces(self, frame: np.ndarray, gray: np.ndarray, found: list[Detection]) -> list[Detection]:
        """The faces the pending whole-frame search found that no track followed then, each
        looked for again in this frame around where it was."""
        search, self._pending = self._pending, None
        fresh: list[Detection] = []
        for det in search.result.result():
            if any(iou(det.box, box) >= 0.3 for box in search.followed):
                continue
            now = self._near(frame, gray, det.box, det.roll)
            if now is not None and all(iou(now.box, f.box) < 0.5 for f in [*found, *fresh]):
                fresh.append(now)
        return fresh

    def _forget_ended(self, live: set[int]) -> None:
        """Drop the moving averages, times and labels of tracks that have ended."""
        kept = [{k: v for k, v in d.items() if k in live} for d in (self._ema, self._rolls, self._updated, self._shown)]
        self._ema, self._rolls, self._updated, self._shown = kept

    def _weights(self, located: _Located) -> list[float]:
        """Each located face's weight of the past (`past_weight`) for this frame, its track's
        time then recorded: called once a frame, before the averages are updated."""
        weights = [past_weight(self.smooth, located.time - self._updated.get(i, located.time)) for i in located.ids]
        self._updated.update((i, located.time) for i in located.ids)
        return weights

    def _smoothed(self, faces: list[FaceResult], weights: list[float]) -> list[FaceResult]:
        labels = self.recognizer.labels
        out = []
        for face, w in zip(faces, weights, strict=True):
            p = np.array([face.scores[k] for k in labels], np.float64)
            prev = self._ema.get(face.face_id)
            p = p if prev is None else w * prev + (1.0 - w) * p
            self._ema[face.face_id] = p
            out.append(FaceResult.from_proba(face.box, p, labels, face.detection_confidence, face.face_id, face.tilt, face.landmarks))
        return out

    def _held_labels(self, faces: list[FaceResult]) -> list[FaceResult]:
        """Each face with its track's last label, unless another emotion now leads that label's
        score by `label_margin` (`PIPELINE.label_margin`: why)."""
        out = []
        for face in faces:
            shown = self._shown.get(face.face_id)  # type: ignore[arg-type]
            if shown is not None and face.scores[face.label] - face.scores[shown] < self.options.label_margin:
                face = replace(face, label=shown)
            self._shown[face.face_id] = face.label  # type: ignore[index]
            out.append(face)
        return out

    def _smoothed_rolls(self, located: _Located, weights: list[float]) -> list[float]:
        """Each face's tilt as a moving average over its track (the weights of `_weights` on the
        past), by which its crop is turned: a steady face's crop then does not turn with each frame's reading."""
        rolls = []
        for det, face_id, w in zip(located.detections, located.ids, weights, strict=True):
            prev = self._rolls.get(face_id)
            # The step is taken the short way round: -179 and 179 degrees are 2 apart.
            roll = det.roll if prev is None else prev + (1.0 - w) * wrap_degrees(det.roll - prev)
            self._rolls[face_id] = roll
            rolls.append(roll)
        return rolls

    def locate(self, frame: np.ndarray, index: int | None = None, time_s: float | None = None) -> _Located:
        """First half of `process`: find and track the faces of one frame."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise DataError(f"frames must be uint8 numpy images in BGR order, got {type(frame).__name__} {getattr(frame, 'shape', '')}")
        t0 = time.perf_counter()
        frame = turn_whole(frame, self.options.rotate)[0]  # a quarter turn moves whole pixels; 0 returns the frame
        # Faces are cut from the colour frame (crop_face makes only the crop gray) unless the detector searches gray.
        gray = to_gray(frame, color_order="bgr") if frame.ndim == 2 or self.recognizer.detector.uses_gray else None
        t1 = time.perf_counter()
        found = self._find(frame, gray)
        ids = self.tracker.update(found)
        kept = [(d, i) for d, i in zip(found, ids, strict=True) if i is not None]  # weak hits that continue no face: dropped
        self._seen_rolls = {i: d.roll for d, i in kept}
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
        image = located.gray if located.gray is not None else located.frame
        self._forget_ended(located.live)
        weights = self._weights(located) if self.smooth > 0 else []
        rolls = self._smoothed_rolls(located, weights) if self.smooth > 0 else None
        faces = self.recognizer.classify_detections(image, located.detections, located.ids, rolls)
        if self.smooth > 0:
            faces = self._smoothed(faces, weights)
        if self.options.label_margin > 0:
            faces = self._held_labels(faces)
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
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emolens-classify") as pool:
                pending = None
                for index, t, frame in frames:
                    located = self.locate(frame, index, t)
                    if pending is not None:
                        yield pending.result()
                    pending = pool.submit(self.classify, located)
                if pending is not None:
                    yield pending.result()
        finally:
            self.close()


@dataclass
class _Search:
    frame: int  # the frame searched
    result: Future  # its detections
    followed: list[tuple[int, int, int, int]]  # boxes of the faces followed in that frame


@dataclass
class _Located:
    frame: np.ndarray
    gray: np.ndarray | None  # None when the detector searches colour: faces are cut from `frame`
    detections: list[Detection]
    ids: list[int]
    live: set[int]  # ids of all live tracks, for pruning the smoothing state
    index: int
    time: float
    ms_preprocess: float
    ms_detect: float
