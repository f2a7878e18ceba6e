"""The face-detector interface every backend implements.

A detector takes a BGR (H, W, 3) or gray (H, W) uint8 image and returns `Detection`s in
that image's pixel coordinates. `detect_near` looks again around a face found earlier; the
video pipeline calls it between full-frame detections, which is where most of its speed
comes from. The generic version crops a window and runs `detect` on it; a detector with a
cheaper way (Haar: search only sizes close to the previous face) overrides it.
"""

from __future__ import annotations

import inspect
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError, ModelError

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
Point = tuple[float, float]  # x, y in pixels
# The eye line and the line from the eyes to the mouth must agree on a face's tilt within this
# many degrees for its crop to be turned (`Detection.roll`): on a face seen in profile, or a box
# on part of a face, landmarks are guesses (on three WIDER FACE photos of couples kissing, eye
# lines more than 45 degrees off faces that were upright: tests/test_alignment.py).
ROLL_AGREEMENT = 25.0
# Sizes `detect_near` accepts for the face it follows, as shares of the face's side (Haar searches only these).
NEAR_SIZES = (0.7, 1.45)
# A face found tilted by this many degrees or more is looked at again in its window turned upright
# by the tilt read (`detect_near_turned`), where it stands nearly upright and its box, landmarks and
# tilt are read better (detectors that find landmarks; docs/faces.md, "Tilted faces"). CenterFace's value:
# chosen among 20, 30 and 45 on 1,200 FER+ validation faces (median tilt error at 45 degrees 5.0
# at 30 against 7.5 at 45), then checked on WIDER FACE photos as they come (unchanged) and turned
# by 30 degrees (83.3% of faces of 40 px and up against 83.1%, at 57 ms a photo against 47).
RELOOK_TILT = 30.0
RELOOK_SAME_FACE_IOU = 0.5  # a find of the turned window overlapping the first box less is another face, or a part


@dataclass(frozen=True)
class Detection:
    box: Box
    confidence: float  # in [0, 1]; how each detector defines it is in its docstring
    # Centres of the two eyes, from a detector that finds landmarks (CenterFace, MTCNN, YuNet,
    # MediaPipe); None from one that does not (Haar, dlib). In the detector's own order: the eye
    # that lies on the image's left when the face is upright first (the person's right eye), so
    # the order holds however far the face is turned.
    eyes: tuple[Point, Point] | None = None
    mouth: Point | None = None  # the mouth's centre (between its corners), from the same detectors

    @property
    def roll(self) -> float:
        """The face's in-plane tilt in degrees, in (-180, 180], by which its crop is turned upright:
        positive when the face is turned clockwise as seen. The angle of the eye line (first eye to
        second) against the image's x axis, averaged with that of the line from between the eyes
        to the mouth against the y axis; 0 when they disagree by more than `ROLL_AGREEMENT`
        (landmarks guessed on a profile or a part of a face), and without eyes."""
        if self.eyes is None:
            return 0.0
        (x1, y1), (x2, y2) = self.eyes
        eye_line = math.degrees(math.atan2(y2 - y1, x2 - x1))
        if self.mouth is None:
            return eye_line
        axis = math.degrees(math.atan2(self.mouth[1] - (y1 + y2) / 2, self.mouth[0] - (x1 + x2) / 2)) - 90.0
        gap = wrap_degrees(axis - eye_line)
        return 0.0 if abs(gap) > ROLL_AGREEMENT else wrap_degrees(eye_line + gap / 2)

    @property
    def landmarks(self) -> dict[str, Point] | None:
        """The eyes and the mouth's centre by name (the person's right eye first, as `eyes`), for
        results; None from a detector without landmarks."""
        if self.eyes is None:
            return None
        named = {"right_eye": self.eyes[0], "left_eye": self.eyes[1]}
        return named if self.mouth is None else {**named, "mouth": self.mouth}

    def shifted(self, dx: float, dy: float, box: Box | None = None) -> Detection:
        """This detection, found in a window whose corner is at (dx, dy), in the whole image's
        pixels; `box` replaces the moved box when the caller has clipped it already."""
        x, y, w, h = self.box
        moved = box if box is not None else (int(round(x + dx)), int(round(y + dy)), w, h)
        eyes = None if self.eyes is None else tuple((ex + dx, ey + dy) for ex, ey in self.eyes)
        mouth = None if self.mouth is None else (self.mouth[0] + dx, self.mouth[1] + dy)
        return Detection(moved, self.confidence, eyes, mouth)  # type: ignore[arg-type]

    def scaled(self, factor: float) -> Detection:
        """This detection, found in a copy of the image resized by `factor`, in the image's pixels."""
        x, y, w, h = (int(round(v / factor)) for v in self.box)
        eyes = None if self.eyes is None else tuple((ex / factor, ey / factor) for ex, ey in self.eyes)
        mouth = None if self.mouth is None else (self.mouth[0] / factor, self.mouth[1] / factor)
        return Detection((x, y, w, h), self.confidence, eyes, mouth)  # type: ignore[arg-type]


def as_bgr_and_gray(
    image: np.ndarray, gray: np.ndarray | None = None, *, need_gray: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Split a detector's input into (bgr or None, gray); gray frames have no colour view.
    need_gray=False (a detector of colour images) leaves gray as given, maybe None."""
    from emolens.preprocessing import to_gray

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DataError(
            f"detectors take uint8 numpy images (H, W) or (H, W, 3) in BGR order, got "
            f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        )
    if image.ndim == 2:
        return None, image
    if image.shape[2] != 3:
        raise DataError(f"detectors take (H, W, 3) BGR images, got shape {image.shape}")
    return image, gray if gray is not None or not need_gray else to_gray(image, color_order="bgr")


def model_file(model_path: str | Path | None, bundled: Path | None, *, what: str, missing: str) -> Path:
    """The model file a detector runs: the one the user names, else the one a dependency ships.

    missing: the error when neither exists (it says what to install); what: the detector's name.
    """
    path = Path(model_path) if model_path else bundled
    if path is None:
        raise ConfigError(missing)
    if not path.is_file():
        raise ModelError(f"{path}: no such {what} model file")
    return path


def intersection(a: Box, b: Box) -> float:
    """The area two (x, y, w, h) boxes share."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, iw) * max(0, ih)


def gap(a: Box, b: Box) -> float:
    """Pixels between two (x, y, w, h) boxes: 0 when they touch or overlap."""
    dx = max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return math.hypot(dx, dy)


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> Box | None:
    """Round a box to ints and clip it to the image; None when nothing is left."""
    x1, y1 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x2, y2 = min(width, int(round(box[0] + box[2]))), min(height, int(round(box[1] + box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return (x1, y1, x2 - x1, y2 - y1)


class DetectorFallbackWarning(UserWarning):
    """A detector runs weaker or slower than it could on this install, and what would mend it
    (shown once per process: Python's default filter shows a warning once per place)."""


class FaceDetector(ABC):
    """Finds faces. Subclasses set `name` and implement `_find`; `detect` adds the second look at
    tilted faces (`relook_tilt`, for detectors that find landmarks)."""

    name: str = "detector"
    # A face found tilted by this many degrees or more is searched again in its window turned
    # upright (`_looked_at_upright`); 0: never. Detectors that find landmarks take it as an argument.
    relook_tilt: float = 0.0
    # True when two threads may call detect/detect_near of one instance at once (CenterFace on
    # onnxruntime, whose sessions are thread-safe); the video pipeline then searches whole frames
    # in a thread of their own while it follows known faces. False: calls take turns (the lock below).
    reentrant: bool = False
    # False for a detector that searches colour images only (CenterFace): a video frame is then
    # never converted to gray whole, only the face crops are (the whole frame's gray view showed in
    # cProfile of `emolens video` as 1.75 s of 300 frames, on busy cores).
    uses_gray: bool = True

    def __init__(self, min_face_size: int = 40, threshold: float = 0.5):
        if min_face_size < 8:
            raise ConfigError(f"min_face_size must be at least 8 pixels, got {min_face_size}")
        self.min_face_size = int(min_face_size)
        if not 0 <= threshold <= 1:
            raise ConfigError(f"detector threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        # OpenCV's detectors keep per-call state (Haar fails with `scaleIdx` errors when two
        # threads share one), so every native detection call runs under this lock.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, gray: np.ndarray | None = None) -> list[Detection]:
        """Faces in a BGR or gray uint8 image, largest first. `gray` may pass a ready gray copy.
        A face found tilted by `relook_tilt` degrees or more is looked at again, upright."""
        found = self._find(image, gray)
        if not self.relook_tilt:
            return found
        return [self._looked_at_upright(image, det) for det in found]

    @abstractmethod
    def _find(self, image: np.ndarray, gray: np.ndarray | None) -> list[Detection]:
        """The detector's own search of the whole image, largest first: `detect` without the second look."""

    def _check_relook_tilt(self, relook_tilt: float) -> float:
        if not 0 <= relook_tilt <= 180:
            raise ConfigError(f"{self.name} relook_tilt must be in [0, 180] degrees (0: never), got {relook_tilt}")
        return float(relook_tilt)

    def _looked_at_upright(self, image: np.ndarray, det: Detection) -> Detection:
        """`det`, or for a face tilted by `relook_tilt` or more, the same face found again in its
        window turned upright by its tilt (a better box, landmarks and tilt), as sure as either."""
        if abs(det.roll) < self.relook_tilt:
            return det
        again = self.detect_near_turned(image, det.box, -det.roll)
        if again is None or iou(again.box, det.box) < RELOOK_SAME_FACE_IOU:
            return det
        return replace(again, confidence=max(det.confidence, again.confidence))

    def _keep(
        self, box: tuple[float, float, float, float], confidence: float, width: int, height: int, threshold: float | None = None,
        eyes: Any = None, mouth: Any = None,
    ) -> Detection | None:
        """A raw box as a Detection clipped to the image, or None: below `threshold` (the detector's
        own unless given), or smaller than `min_face_size` (by 10%: a face searched at the minimum
        size may come back a little smaller). eyes: the two eye centres ((x, y), (x, y)), and mouth its
        centre (x, y), if found."""
        clipped = clip_box(box, width, height)
        floor = self.threshold if threshold is None else threshold
        if clipped is None or confidence < floor or max(clipped[2:]) < self.min_face_size * 0.9:
            return None
        if eyes is None:  # a mouth without eyes tells no tilt
            return Detection(clipped, float(confidence))
        return Detection(clipped, float(confidence), (_point(eyes[0]), _point(eyes[1])), None if mouth is None else _point(mouth))

    def detect_near(self, image: np.ndarray, box: Box, gray: np.ndarray | None = None) -> Detection | None:
        """The face closest to `box` within a window twice its size, or None."""
        return self._nearest_in_window(image, box, gray, lambda window, g: self._search_window(window, g, max(box[2:])))

    def detect_near_turned(self, image: np.ndarray, box: Box, clockwise: float, gray: np.ndarray | None = None) -> Detection | None:
        """As `detect_near`, with the window turned clockwise by `clockwise` degrees before it is
        searched (`turned_search`): a face tilted by about minus that much stands upright there,
        where it is found more surely, with a face-shaped box and its landmarks read better."""
        side = max(box[2:])
        return self._nearest_in_window(
            image, box, gray, lambda window, _: turned_search(lambda turned: self._search_window(turned, None, side), window, clockwise),
        )

    def _search_window(self, window: np.ndarray, gray: np.ndarray | None, side: int) -> list[Detection]:
        """The faces in a window around a known face of `side` pixels (`detect_near`): here the
        whole search; a detector may search such a window its own cheaper way."""
        return self._find(window, gray)

    def _nearest_in_window(
        self, image: np.ndarray, box: Box, gray: np.ndarray | None,
        search: Callable[[np.ndarray, np.ndarray | None], list[Detection]],
    ) -> Detection | None:
        """`detect_near` with the window's search given (window, its gray or None) -> detections in
        the window's pixels: a detector may search it its own way (Haar: only sizes near the face)."""
        x, y, w, h = box
        H, W = image.shape[:2]
        x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
        x1, y1 = min(W, x + w + w // 2), min(H, y + h + h // 2)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        sub_gray = gray[y0:y1, x0:x1] if gray is not None else None
        found = search(np.ascontiguousarray(image[y0:y1, x0:x1]), sub_gray)
        best, best_iou = None, 0.0
        side = max(w, h)
        for det in found:
            # A face does not halve or double between two frames: a box that did is part of this
            # face or another one (seen: a 53 px box inside a 146 px face took over its track).
            if not NEAR_SIZES[0] * side <= max(det.box[2:]) <= NEAR_SIZES[1] * side:
                continue
            moved = clip_box((det.box[0] + x0, det.box[1] + y0, det.box[2], det.box[3]), W, H)
            overlap = iou(moved, box) if moved is not None else 0.0
            if overlap > best_iou:
                best, best_iou = det.shifted(x0, y0, box=moved), overlap
        return best

    def __repr__(self) -> str:
        """min_face_size, threshold, and every other constructor argument the detector keeps
        under its own name that is not at its default (e.g. CenterFace's work_px); files by name."""
        params = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{name}={_short(getattr(self, name))!r}" for name, param in params.items()
            if hasattr(self, name) and (name in ("min_face_size", "threshold") or _differs(getattr(self, name), param.default))
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def _point(xy: Any) -> Point:
    """(x, y) as plain floats from any pair (a numpy row, ints)."""
    return float(xy[0]), float(xy[1])


def wrap_degrees(degrees: float) -> float:
    """The same angle in (-180, 180]: the short way round from 0."""
    return 180.0 - (180.0 - degrees) % 360.0


def _short(value: object) -> object:
    return value.name if isinstance(value, Path) else value


def _differs(value: object, default: object) -> bool:
    try:
        return bool(value != default)
    except (TypeError, ValueError):  # an array or another value without a plain truth: show it
        return True


def turn_whole(image: np.ndarray, clockwise: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` turned clockwise by `clockwise` degrees about its centre on a canvas grown to hold
    it whole (black outside it), and the 2x3 affine matrix from its pixels to the canvas's. A
    quarter or half turn moves whole pixels (`cv2.rotate`): no interpolation, no border."""
    import cv2

    h, w = image.shape[:2]
    quarters = clockwise / 90.0
    if quarters == round(quarters):
        return _quarter_turned(image, int(round(quarters)) % 4)
    turn = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -clockwise, 1.0)  # OpenCV's positive angle is anticlockwise
    c, s = abs(turn[0, 0]), abs(turn[0, 1])
    new_w, new_h = int(np.ceil(w * c + h * s)), int(np.ceil(w * s + h * c))
    turn[:, 2] += (new_w - w) / 2.0, (new_h - h) / 2.0
    return cv2.warpAffine(image, turn, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), turn


def _quarter_turned(image: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`turn_whole` for `k` quarter turns clockwise: the pixels moved whole, and their exact matrix."""
    import cv2

    h, w = image.shape[:2]
    if k == 0:
        return image, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    code, turn = {
        1: (cv2.ROTATE_90_CLOCKWISE, [[0.0, -1.0, h - 1.0], [1.0, 0.0, 0.0]]),
        2: (cv2.ROTATE_180, [[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0]]),
        3: (cv2.ROTATE_90_COUNTERCLOCKWISE, [[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0]]),
    }[k]
    return cv2.rotate(image, code), np.array(turn)


def turned_search(search: Callable[[np.ndarray], list[Detection]], image: np.ndarray, clockwise: float) -> list[Detection]:
    """`search` run on `image` turned clockwise by `clockwise` degrees (on a canvas that holds it
    whole), its detections brought back into `image`'s pixels: a face tilted by about that much
    stands upright in the turned copy, where detectors find tilted faces best. Each box keeps its
    size and is centred where the face's centre was; eyes and mouth go back exactly, so the
    detection's `roll` is the face's tilt in `image`."""
    import cv2

    h, w = image.shape[:2]
    turned, turn = turn_whole(image, clockwise)
    back = cv2.invertAffineTransform(turn)

    def home(point: Point) -> Point:
        x, y = back @ np.array([point[0], point[1], 1.0])
        return float(x), float(y)

    found = []
    for det in search(turned):
        x, y, bw, bh = det.box
        cx, cy = home((x + bw / 2.0, y + bh / 2.0))
        box = clip_box((cx - bw / 2.0, cy - bh / 2.0, bw, bh), w, h)
        if box is None:
            continue
        eyes = None if det.eyes is None else (home(det.eyes[0]), home(det.eyes[1]))
        found.append(Detection(box, det.confidence, eyes, None if det.mouth is None else home(det.mouth)))
    return found


CLOSE_UP_MAX_ASPECT = 3.0


def find_close_up(
    detector: FaceDetector, image: np.ndarray, gray: np.ndarray | None = None, *, side: int, border: float,
    shrink: bool = True, min_share: float = 0.3,
) -> list[Detection]:
    """Faces filling most of `image` (a face cropped elsewhere, a close selfie), largest first, in
    its pixels: those detectors trained on scenes miss most, since they come without the
    surroundings faces are found in and may be larger than any face the detector looks for.
    The image is resized so that its shorter side is `side` pixels (only enlarged if not
    `shrink`), set on a border of `border` times that in its mean colour (the context a face has
    in a photo), and searched there; a find is kept if its box is at least `min_share` of the
    image's shorter side, clipped to the image. A picture over `CLOSE_UP_MAX_ASPECT` times as long
    as it is wide holds no face filling it, and is not searched (nor enlarged to a huge one)."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) > CLOSE_UP_MAX_ASPECT * min(h, w):
        return []
    factor = side / min(h, w) if shrink else max(1.0, side / min(h, w))
    if factor != 1.0:
        interpolation = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_CUBIC
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation)
        gray = None if gray is None else cv2.resize(gray, None, fx=factor, fy=factor, interpolation=interpolation)
    pad = int(round(border * side))
    if pad:
        fill = [int(v) for v in cv2.mean(image)[: 1 if image.ndim == 2 else 3]]
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        gray = None if gray is None else cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=int(cv2.mean(gray)[0]))
    found = []
    for det in detector.detect(image, gray):
        home = det.shifted(-pad, -pad).scaled(factor)
        box = clip_box(home.box, w, h)
        if box is not None and max(box[2:]) >= min_share * min(h, w):
            found.append(replace(home, box=box))
    return sort_largest_first(found)


# A photo taken sideways or upside down whose EXIF rotation was lost (a scan, a screenshot, a file
# some app re-saved) shows its faces lying a quarter or half turn from upright, and the detector,
# which learned upright faces, finds few of them. A face counts as lying so when its tilt is within
# this many degrees of a quarter turn (`quarter_turn`).
QUARTER_TURN_TOLERANCE = 30.0
# A photo in which nothing was found is taken to be the wrong way round only if a turned copy shows
# a face at least this sure: on the WIDER FACE photos turned sideways or upside down, 0.6 keeps all
# but 0.1-0.2 points of the recall of no bar, and it turns away the one find (0.50) that scikit-image's
# face-free photos gave (`benchmarks/detection.py --photo --turn 90`, `--turn 180`, before quarter turns
# moved whole pixels; `tests/test_close_up.py`).
TURNED_PHOTO_SURE = 0.6
# A photo none of whose finds is this sure, all of them lying upright, may still be the wrong way
# round: a detector searching a sideways photo takes a few wrong things for upright faces. It is
# searched turned too, and a turn is taken where its finds carry more confidence than the first
# search's. Photos turned sideways: 87.6% of the faces of 40 px and up found against 80.2% without
# this step; upside down 86.3% against 75.9%; upright photos, the same faces and false detections,
# at 40 ms a photo against 32 (`benchmarks/detection.py --photo`, with and without `--turn 90`, `--turn 180`,
# measured before quarter turns moved whole pixels; after it, the whole: 88.5% and 88.2%, and 40 ms
# against 29 without any turned search: docs/faces.md, "Photos the wrong way round").
TURNED_PHOTO_UNSURE = 0.75


def quarter_turn(det: Detection) -> int:
    """How many quarter turns clockwise (0-3) stand `det` upright, or -1 when its tilt lies more
    than `QUARTER_TURN_TOLERANCE` from any (a face without landmarks counts as upright)."""
    k = round(-det.roll / 90.0) % 4
    return k if abs(wrap_degrees(-det.roll - 90.0 * k)) <= QUARTER_TURN_TOLERANCE else -1


def find_in_turned_photo(detector: FaceDetector, image: np.ndarray, found: list[Detection]) -> list[Detection]:
    """The faces of a photo that may be the wrong way round, largest first, given what the
    detector `found` in it as it is. Where found faces lie a quarter or half turn from upright,
    the photo is searched again turned the way most of them lie, and the finds are merged with
    the first search's; where most found faces lie so, the photo is taken to be the wrong way
    round and the turned search's finds alone are kept (it finds the lying faces again, and a
    search of a photo the wrong way round takes more of the wrong things for faces: on WIDER FACE
    photos turned sideways, 136 detections matching no face against 172 when merged, at the same
    recall, before quarter turns moved whole pixels). Where none was found, or none of the upright finds is `TURNED_PHOTO_UNSURE` sure, the
    photo is searched turned each of the three ways, and of those showing a face at least
    `TURNED_PHOTO_SURE` sure, the way whose upright finds carry the most confidence is taken, if
    they carry more than the first search's finds. A photo with a sure upright face costs nothing more."""
    votes = [0, 0, 0, 0]
    for det in found:
        if (k := quarter_turn(det)) >= 0:
            votes[k] += 1
    k = max((1, 2, 3), key=lambda q: votes[q])
    if votes[k]:
        again = turned_search(detector.detect, image, 90.0 * k)
        kept = [] if votes[k] > votes[0] and again else found  # the first finds stay if the turned search finds nothing
        return sort_largest_first(merge_overlapping(kept + again, RELOOK_SAME_FACE_IOU))
    if found and max(d.confidence for d in found) >= TURNED_PHOTO_UNSURE:
        return found
    best: list[Detection] = found
    for k in (1, 3, 2):  # sideways photos are commoner than upside-down ones: first on ties
        upright = [d for d in turned_search(detector.detect, image, 90.0 * k) if quarter_turn(d) == k]
        if not any(d.confidence >= TURNED_PHOTO_SURE for d in upright):
            continue
        if sum(d.confidence for d in upright) > sum(d.confidence for d in best):
            best = upright
    return sort_largest_first(best)


def sort_largest_first(dets: list[Detection]) -> list[Detection]:
    return sorted(dets, key=lambda d: -d.box[2] * d.box[3])


def tiles(width: int, height: int, tile: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x, y, w, h) covering the image, for detectors with a small fixed
    input (BlazeFace sees 128-192 px): a face a tile's `overlap` wide or smaller lies whole in one."""
    step = max(1, int(tile * (1 - overlap)))
    xs = list(range(0, max(width - tile, 0) + 1, step)) or [0]
    ys = list(range(0, max(height - tile, 0) + 1, step)) or [0]
    if xs[-1] + tile < width:
        xs.append(width - tile)
    if ys[-1] + tile < height:
        ys.append(height - tile)
    return [(x, y, min(tile, width - x), min(tile, height - y)) for y in ys for x in xs]


def merge_overlapping(dets: list[Detection], max_iou: float = 0.3) -> list[Detection]:
    """Non-maximum suppression: of detections overlapping more than `max_iou`, the most confident."""
    import cv2

    if not dets:
        return []
    keep = cv2.dnn.NMSBoxes([list(d.box) for d in dets], [d.confidence for d in dets], 0.0, max_iou)
    return [dets[k] for k in keep]

