"""Drawing faces on images: a box and label per face, and score bars where they cover no face.

Sizes scale with the image (`_unit`), so labels stay readable on a 4K photo and a webcam
frame alike, and each label also shrinks to its face's width, so on a group photo it does not
spill over the neighbours. `plan_layout` places labels and bars where they overlap no other
face (nor each other; a label does only where the faces leave it no room): bars beside the
largest face and its label, else as near it as is free (`bars="largest"`, the default), beside
every face (`"all"`, as narrow column charts where the named panel does not fit) or nowhere
(`"none"`).
Colours come from `emolens.pipeline.colors`, the table the web page uses too. Everything is
plain OpenCV drawing, cheap enough for 60 frames/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emolens.errors import ConfigError
from emolens.faces.base import gap, intersection
from emolens.labels import EMOTIONS
from emolens.pipeline.colors import bgr_of, hex_to_bgr, ink_of
from emolens.pipeline.defaults import PIPELINE

if TYPE_CHECKING:  # pragma: no cover
    from emolens.pipeline.results import FaceResult

Rect = tuple[int, int, int, int]  # x, y, w, h
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX, spelled as its value so this module imports without cv2
BAR_CHOICES = ("none", "largest", "all")
_OWN_FACE_PANEL_SHARE = 0.15  # most of the picture a score panel may take over the largest face itself
_TAG_STAY_COVER = 0.1  # in a video a tag stays in its last frame's slot while it covers at most this share of itself
_SIZE_MEMORY = 0.8  # weight of the past in a tracked face's moving average of its box area (`LayoutMemory`)
_PANEL_STAY_COVER = 0.1  # in a video a panel away from its face stays while it covers at most this share of its face's tag, and of itself by its face's box


def color_of(label: str, labels: Sequence[str] = EMOTIONS) -> tuple[int, int, int]:
    """The label's BGR colour (the shared table of `emolens.pipeline.colors`)."""
    return bgr_of(label, labels)


def bar_choice(bars: bool | str) -> str:
    """"none", "largest" or "all" from a --bars value (True: all, False: none)."""
    if bars is True or bars is False:
        return "all" if bars else "none"
    if bars not in BAR_CHOICES:
        raise ConfigError(f"bars must be one of {', '.join(BAR_CHOICES)}, got {bars!r}")
    return str(bars)


def _unit(shape: tuple[int, ...]) -> float:
    """Drawing scale: 1.0 for a 440-pixel-high (4:3) image, never below 0.75 (small text blurs)."""
    return max(0.75, min(shape[0], shape[1] * 0.75) / 440.0)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A drawable (H, W, 3) uint8 BGR copy of a gray or BGR image."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image.copy()


def _tag_size(text: str, u: float) -> tuple[int, int, int, float, int]:
    """(width, height, padding, font scale, thickness) of a label tag at unit `u`."""
    import cv2

    scale, thick = 0.55 * u, max(1, int(round(1.4 * u)))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thick)
    pad = max(2, int(3 * u))
    return tw + 2 * pad, th + 2 * pad, pad, scale, thick


def _label_box(img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], ink: tuple[int, int, int], u: float) -> None:
    """Text in `ink` on a tag filled with `color` whose top-left corner is (x, y), kept inside the image."""
    import cv2

    w, h, pad, scale, thick = _tag_size(text, u)
    H, W = img.shape[:2]
    x, y = int(min(max(0, x), max(0, W - w))), int(min(max(0, y), max(0, H - h)))
    cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
    cv2.putText(img, text, (x + pad, y + h - pad), _FONT, scale, ink, thick, cv2.LINE_AA)


def draw_bars(
    img: np.ndarray, scores: dict[str, float], x: int, y: int, u: float, labels: Sequence[str] = EMOTIONS, width: int | None = None,
    shown: str | None = None,
) -> tuple[int, int]:
    """A bar per emotion, top-left at (x, y), on a dark translucent panel, the row of `shown` (the
    face's label: in video a track's, which may trail a close second, `StreamOptions.label_margin`;
    default the top score) in white; returns (w, h)."""
    import cv2

    row = int(round(15 * u))
    name_w = int(round(62 * u))
    bar_w = width - name_w - int(40 * u) if width else int(round(70 * u))
    pw, ph = name_w + bar_w + int(40 * u), row * len(labels) + int(6 * u)
    H, W = img.shape[:2]
    x, y = int(min(max(0, x), max(0, W - pw))), int(min(max(0, y), max(0, H - ph)))
    roi = img[y : y + ph, x : x + pw]
    cv2.convertScaleAbs(roi, roi, alpha=0.35)  # darken in place, so bars and text read on any background
    scale, thick = 0.42 * u, max(1, int(round(u)))
    top = shown if shown is not None else max(labels, key=lambda k: scores.get(k, 0.0))
    for i, name in enumerate(labels):
        p = float(scores.get(name, 0.0))
        cy = y + int(3 * u) + i * row
        text_color = (255, 255, 255) if name == top else (200, 200, 200)
        cv2.putText(img, name, (x + int(3 * u), cy + row - int(4 * u)), _FONT, scale, text_color, thick, cv2.LINE_AA)
        bx = x + name_w
        cv2.rectangle(img, (bx, cy + int(3 * u)), (bx + bar_w, cy + row - int(2 * u)), (70, 70, 70), -1)
        cv2.rectangle(img, (bx, cy + int(3 * u)), (bx + int(round(bar_w * p)), cy + row - int(2 * u)), color_of(name, labels), -1)
        cv2.putText(img, f"{p * 100:.0f}", (bx + bar_w + int(4 * u), cy + row - int(4 * u)), _FONT, scale, text_color, thick, cv2.LINE_AA)
    return pw, ph


def _inside(rect: Rect, shape: tuple[int, ...]) -> Rect:
    x, y, w, h = rect
    H, W = shape[:2]
    return int(min(max(0, x), max(0, W - w))), int(min(max(0, y), max(0, H - h))), w, h


def _is_free(rect: Rect, shape: tuple[int, ...], taken: list[Rect]) -> bool:
    """Whether `rect` fits inside the image and overlaps nothing `taken`."""
    x, y, w, h = rect
    return x >= 0 and y >= 0 and x + w <= shape[1] and y + h <= shape[0] and not any(intersection(rect, t) for t in taken)


def _free_spot(candidates: list[Rect], shape: tuple[int, ...], taken: list[Rect]) -> Rect | None:
    """The first candidate that fits inside the image and overlaps nothing `taken`, or None."""
    return next((r for r in candidates if _is_free(r, shape, taken)), None)


def _union(a: Rect, b: Rect) -> Rect:
    x, y = min(a[0], b[0]), min(a[1], b[1])
    return x, y, max(a[0] + a[2], b[0] + b[2]) - x, max(a[1] + a[3], b[1] + b[3]) - y


def _beside(box: Rect, w: int, h: int, gap: int = 4) -> list[Rect]:
    """Spots for a w x h panel touching a box: right of it, left of it (each level with its top,
    then with its bottom), below it and above it (each level with its left edge, then its right)."""
    x, y, bw, bh = box
    right, left, below, above = x + bw + gap, x - gap - w, y + bh + gap, y - gap - h
    return [(right, y, w, h), (left, y, w, h), (right, y + bh - h, w, h), (left, y + bh - h, w, h),
            (x, below, w, h), (x + bw - w, below, w, h), (x, above, w, h), (x + bw - w, above, w, h)]


def _nearest_free(region: Rect, w: int, h: int, shape: tuple[int, ...], taken: list[Rect]) -> Rect | None:
    """The free w x h spot inside the image closest to `region` (a face and its tag), searched on a
    grid of a quarter of the spot's size: where nothing beside the face is free, the panel goes as
    near it as the other faces allow, not to a fixed corner."""
    H, W = shape[:2]
    if w > W or h > H:
        return None
    step_x, step_y = max(4, w // 4), max(4, h // 4)
    xs = np.unique(np.append(np.arange(0, W - w + 1, step_x), W - w))
    ys = np.unique(np.append(np.arange(0, H - h + 1, step_y), H - h))
    cx, cy = (a.ravel() for a in np.meshgrid(xs, ys))
    free = np.ones(cx.shape, bool)
    for tx, ty, tw, th in taken:
        free &= (cx >= tx + tw) | (cx + w <= tx) | (cy >= ty + th) | (cy + h <= ty)
    if not free.any():
        return None
    rx, ry, rw, rh = region
    dx = np.maximum(0, np.maximum(rx - (cx + w), cx - (rx + rw)))
    dy = np.maximum(0, np.maximum(ry - (cy + h), cy - (ry + rh)))
    best = int(np.argmin(np.where(free, np.hypot(dx, dy), np.inf)))
    return int(cx[best]), int(cy[best]), w, h


def _corners(shape: tuple[int, ...], w: int, h: int, margin: int = 4) -> list[Rect]:
    H, W = shape[:2]
    return [(W - w - margin, margin, w, h), (margin, margin, w, h), (W - w - margin, H - h - margin, w, h), (margin, H - h - margin, w, h)]


def draw_mini_bars(img: np.ndarray, scores: dict[str, float], x: int, y: int, h: int, labels: Sequence[str] = EMOTIONS) -> int:
    """A narrow column chart, one bar per emotion in its colour, top-left at (x, y), h high;
    for crowded images where the named panel would cover other faces. Returns its width."""
    import cv2

    bw = max(3, h // 12)
    width = len(labels) * (bw + 1) + 3
    H, W = img.shape[:2]
    x, y = int(min(max(0, x), max(0, W - width))), int(min(max(0, y), max(0, H - h)))
    roi = img[y : y + h, x : x + width]
    cv2.convertScaleAbs(roi, roi, alpha=0.35)
    for i, name in enumerate(labels):
        top = y + h - 2 - int(round((h - 4) * float(scores.get(name, 0.0))))
        bx = x + 2 + i * (bw + 1)
        cv2.rectangle(img, (bx, top), (bx + bw - 1, y + h - 2), color_of(name, labels), -1)
    return width


def _tag_spot(box: Rect, tw: int, th: int, shape: tuple[int, ...], taken: list[Rect], first: int | None = None) -> tuple[Rect, int | None]:
    """(spot, slot) of a face's tag: above the face, else below it (level with its left edge, then
    its right, then centred: a small face's tag is wider than the face), else inside its top edge:
    the first that covers nothing else; when all do, the one that covers least (slot None). Slot
    `first` (where it went in the last frame of a video) is kept while it covers a sliver at most."""
    x, y, w, h = box
    lefts = (x, x + w - tw, x + (w - tw) // 2)
    spots = [(left, y - th, tw, th) for left in lefts] + [(left, y + h, tw, th) for left in lefts] + [(x, y, tw, th)]
    spots = [_inside(r, shape) for r in spots]  # a tag is drawn inside the image: judge it where it will be
    if first is not None and first < len(spots) and sum(intersection(spots[first], t) for t in taken) <= _TAG_STAY_COVER * tw * th:
        return spots[first], first  # where it was, though a box's jitter now grazes it: no hop
    for k, spot in enumerate(spots):
        if _is_free(spot, shape, taken):
            return spot, k
    return min(spots, key=lambda r: sum(intersection(r, t) for t in taken)), None


@dataclass(frozen=True)
class Tag:
    """A face's label: its text on a filled tag at `rect`, drawn at text scale `unit`."""

    face: FaceResult
    text: str
    rect: Rect
    unit: float


@dataclass(frozen=True)
class ScoreBars:
    """A face's scores at `rect`: the named panel ("panel") or a narrow column chart ("columns");
    `side`: which of the spots beside the face and its tag it took (`_beside`), None elsewhere."""

    face: FaceResult
    rect: Rect
    kind: str
    side: int | None = None


@dataclass(frozen=True)
class Layout:
    """Where everything of `draw_faces` goes, decided before anything is drawn (and testable alone)."""

    unit: float
    tags: list[Tag]
    bars: list[ScoreBars]


def _panel_size(u: float, labels: Sequence[str]) -> tuple[int, int]:
    return int(round(172 * u)), int(round(15 * u)) * len(labels) + int(6 * u)


def _plan_tags(
    faces: Sequence[FaceResult], shape: tuple[int, ...], u: float, show_ids: bool, taken: list[Rect], memory: LayoutMemory | None = None,
) -> list[Tag]:
    """A tag per face, largest first, each where it covers no face and no earlier tag (in a
    video, where it went in the last frame while that is free)."""
    slots = memory.tag_slots if memory is not None else {}
    tags = []
    # Largest first; in a video, faces with a place from the last frame first, in a fixed order,
    # so two faces of about one size do not take turns at the better spot as their sizes jitter.
    for face in sorted(faces, key=lambda f: (f.face_id not in slots, f.face_id if f.face_id in slots else 0, -_area(f))):
        text = f"{face.label} {face.score:.0%}"
        if show_ids and face.face_id is not None:
            text = f"#{face.face_id} {text}"
        tu = min(u, max(0.45, face.box[2] / 110.0))  # no wider than about the face: group photos stay readable
        tw, th = _tag_size(text, tu)[:2]
        others = [t for t in taken if t != tuple(face.box)]
        spot, slot = _tag_spot(face.box, tw, th, shape, others, slots.get(face.face_id) if face.face_id is not None else None)
        if memory is not None and face.face_id is not None and slot is not None:
            slots[face.face_id] = slot
        taken.append(spot)
        tags.append(Tag(face, text, spot, tu))
    _forget_gone(slots, faces)
    return tags


def _forget_gone(by_id: dict[int, Any], faces: Sequence[FaceResult]) -> None:
    """Drop, in place, the entries of faces no longer in view once they pile up: a long video's
    tracks come and go, and a memory of each would grow with the video."""
    if len(by_id) > 4 * len(faces) + 64:
        present = {f.face_id for f in faces}
        for gone in [i for i in by_id if i not in present]:
            del by_id[gone]


def _bars_spot(
    face: FaceResult, tag: Rect, which: str, shape: tuple[int, ...], u: float, labels: Sequence[str], taken: list[Rect],
    side: int | None = None, last: Rect | None = None,
) -> ScoreBars | None:
    """Where one face's bars go, covering no face, tag or panel; None where nothing fits.

    The named panel goes beside the face and its tag (first on `side`, where it went in the last
    frame, while that is free: a panel hopping round its face is worse than one a little lower).
    Else the largest face's panel goes to the free spot nearest it (the one face whose scores are
    shown: its named bars a little way off read better than a column chart beside it); a
    close-up's (a face filling the picture) to a corner over its own edge; any other face's bars
    become a narrow column chart beside it. A panel that was away from its face in the last frame,
    at `last`, stays there while it is free (but for a sliver of its own face's box and tag, which
    jitter into it) and no spot half a panel nearer has opened."""
    pw, ph = _panel_size(u, labels)
    region = _union(tuple(face.box), tag)  # type: ignore[arg-type]
    spot = _panel_beside(face, region, pw, ph, shape, taken, side)
    if spot is None and which == "largest":
        near = _nearest_free(region, pw, ph, shape, taken)
        spot = None if near is None else ScoreBars(face, near, "panel")
    stay = last is not None and side is None and last[2:] == (pw, ph) and _may_stay(last, tuple(face.box), tag, shape, taken)  # type: ignore[arg-type]
    if stay and (spot is None or gap(last, region) <= gap(spot.rect, region) + ph / 2):  # type: ignore[arg-type]
        return ScoreBars(face, last, "panel")  # type: ignore[arg-type]
    if spot is None and which == "largest" and pw * ph <= _OWN_FACE_PANEL_SHARE * shape[0] * shape[1]:
        corner = _free_spot(_corners(shape, pw, ph), shape, [t for t in taken if t != tuple(face.box)])
        spot = None if corner is None else ScoreBars(face, corner, "panel")
    if spot is not None:
        return spot
    h = face.box[3]
    mw = len(labels) * (max(3, h // 12) + 1) + 3
    columns = _free_spot([_inside(r, shape) for r in _beside(tuple(face.box), mw, h)], shape, taken)  # type: ignore[arg-type]
    return None if columns is None else ScoreBars(face, columns, "columns")


def _may_stay(panel: Rect, box: Rect, tag: Rect, shape: tuple[int, ...], taken: list[Rect]) -> bool:
    """A panel may stay where it was: free of everything but its own face's box and tag, and of
    those but a sliver (of the tag: its padding, its text left whole)."""
    slivers = intersection(panel, box) <= _PANEL_STAY_COVER * panel[2] * panel[3] and intersection(panel, tag) <= _PANEL_STAY_COVER * tag[2] * tag[3]
    return slivers and _is_free(panel, shape, [t for t in taken if t not in (box, tag)])


def _panel_beside(face: FaceResult, region: Rect, pw: int, ph: int, shape: tuple[int, ...], taken: list[Rect], side: int | None) -> ScoreBars | None:
    """The named panel in the first free spot beside the face and its tag, `side` first."""
    beside = [_inside(r, shape) for r in _beside(region, pw, ph)]
    for k in ([side] if side is not None else []) + list(range(len(beside))):
        if _is_free(beside[k], shape, taken):
            return ScoreBars(face, beside[k], "panel", k)
    return None


def _area(face: FaceResult) -> int:
    return face.box[2] * face.box[3]


class LayoutMemory:
    """What the drawing of one video frame leaves for the next, so that nothing hops: whose bars
    bars="largest" shows (`main_face`: the largest face, kept while it is in view and no other face
    grows `switch` times as large, by box area averaged over a few frames (a detector's boxes of
    two faces cheek to cheek jitter by a third of their area); a face missed for up to `hold`
    frames keeps the choice, its panel its last scores), on which side of it its panel went, and
    where each face's tag went (each tried there first while that is free). Two people of about
    one size would otherwise trade the bars with the detector's box jitter, a frame missing one
    of them would hand the bars to the other for good, and panels and tags near an edge or a
    neighbour would hop round their faces (`benchmarks/drawing.py --video`). Faces without a
    track id are placed afresh each frame."""

    def __init__(self, switch: float = PIPELINE.main_face_switch, hold: int = PIPELINE.main_face_hold) -> None:
        self.switch = switch
        self.hold = hold
        self.face_id: int | None = None  # the main face's track id
        self.shown: FaceResult | None = None  # the main face as last seen (its scores while it is held)
        self.missed = 0  # frames in a row without the main face
        self.side: int | None = None  # where beside the main face its panel went last (`ScoreBars.side`)
        self.spot: Rect | None = None  # and where it lay last
        self.tag_slots: dict[int, int] = {}  # face id -> the `_tag_spot` slot its tag took last
        self.sizes: dict[int, float] = {}  # face id -> its box area, a moving average
        self.chosen: FaceResult | None = None  # this frame's answer of `main_face`
        self.pinned = False  # the main face was chosen by a viewer (`follow`): no other takes the bars

    @classmethod
    def at_rate(cls, fps: float | None) -> LayoutMemory:
        """The memory for frames that come `fps` a second (None: unknown): `PIPELINE.main_face_hold`
        frames at 30 frames/s is half a second, and stays half a second at higher rates (60 for a
        phone's video), as the tracker keeps a lost face for a second at any rate."""
        return cls(hold=PIPELINE.frames_at(PIPELINE.main_face_hold, fps))

    def follow(self, face_id: int | None) -> None:
        """Keep the bars on the face with track id `face_id` (a viewer's choice), however large
        the others grow, while it is in view or missed for up to `hold` frames; None: back to the
        largest face, by the rule."""
        if face_id != self.face_id:
            self.side = self.spot = self.shown = None
        self.face_id, self.pinned, self.missed = face_id, face_id is not None, 0

    def reset(self) -> None:
        """Forget everything (another camera, another shot): the next frame is placed afresh."""
        self.__init__(self.switch, self.hold)  # type: ignore[misc]  # the fields, in one place

    @property
    def held(self) -> bool:
        """The main face is out of view for a moment: its bars keep its last scores (`shown`)."""
        return self.shown is not None and 0 < self.missed <= self.hold

    def main_face(self, faces: Sequence[FaceResult]) -> FaceResult | None:
        """The face whose bars "largest" shows in this frame (None: none, or the main face missed
        and held); call once per frame (`chosen` keeps the answer)."""
        self.chosen = self._choose(faces)
        return self.chosen

    def _size(self, face: FaceResult) -> float:
        return _area(face) if face.face_id is None else self.sizes[face.face_id]

    def _update_sizes(self, faces: Sequence[FaceResult]) -> None:
        sizes = {f.face_id: float(_area(f)) for f in faces if f.face_id is not None}
        for face_id, area in sizes.items():
            last = self.sizes.get(face_id)
            self.sizes[face_id] = area if last is None else _SIZE_MEMORY * last + (1.0 - _SIZE_MEMORY) * area
        _forget_gone(self.sizes, faces)

    def _choose(self, faces: Sequence[FaceResult]) -> FaceResult | None:
        self._update_sizes(faces)
        current = next((f for f in faces if f.face_id is not None and f.face_id == self.face_id), None)
        if current is None and self.face_id is not None:
            self.missed += 1
            if self.missed <= self.hold:
                return None  # a blink, a turned head, a missed detection: the bars wait for it
            self.pinned = False  # gone: the rule chooses again
        largest = max(faces, key=self._size, default=None)
        if largest is None:
            return None
        if current is None or (not self.pinned and self._size(largest) > self.switch * self._size(current)):
            current = largest
        if current.face_id != self.face_id or current.face_id is None:
            self.side = self.spot = None  # another face: its panel goes where it fits best
        self.face_id, self.shown, self.missed = current.face_id, current, 0
        return current


def plan_layout(
    faces: Sequence[FaceResult], shape: tuple[int, ...], *, labels: Sequence[str] = EMOTIONS, bars: bool | str = PIPELINE.bars,
    ids: bool | None = None, follow: LayoutMemory | None = None,
) -> Layout:
    """Where `draw_faces` puts each face's tag and score bars on an image of `shape`: no tag or
    bars over another face, tag or bars. `follow`: a `LayoutMemory` carried from frame to frame of a
    video, which chooses whose bars "largest" shows and keeps them on one side of that face; it
    is updated."""
    which = bar_choice(bars)
    u = _unit(shape)
    show_ids = any(f.face_id is not None for f in faces) if ids is None else ids
    taken: list[Rect] = [tuple(f.box) for f in faces]  # type: ignore[misc]
    tags = _plan_tags(faces, shape, u, show_ids, taken, follow)
    placed = [] if which == "none" else _place_bars(faces, tags, which, shape, u, labels, taken, follow)
    return Layout(u, tags, placed)


def _place_bars(
    faces: Sequence[FaceResult], tags: list[Tag], which: str, shape: tuple[int, ...], u: float, labels: Sequence[str],
    taken: list[Rect], follow: LayoutMemory | None,
) -> list[ScoreBars]:
    """The bars of the faces `which` names, each where `_bars_spot` finds room; in a video whose
    main face is missed for a moment (`LayoutMemory.held`), its panel stays where it was with its
    last scores, while that spot is free: a panel blinking out with each missed detection, or
    going to another person, is worse than one half a second old."""
    main = follow.main_face(faces) if follow is not None else max(faces, key=_area, default=None)  # frames without faces count too
    if main is None and which == "largest" and follow is not None and follow.held and follow.spot is not None:
        return [ScoreBars(follow.shown, follow.spot, "panel", follow.side)] if _is_free(follow.spot, shape, taken) else []  # type: ignore[arg-type]
    chosen = list(faces) if which == "all" else [] if main is None else [main]
    tag_of = {id(tag.face): tag.rect for tag in tags}
    placed = []
    for face in chosen:
        memory = follow if follow is not None and face is main else None
        side, last = (memory.side, memory.spot) if memory is not None else (None, None)
        spot = _bars_spot(face, tag_of[id(face)], which, shape, u, labels, taken, side, last)
        if spot is not None:
            taken.append(spot.rect)
            placed.append(spot)
            if memory is not None:
                memory.spot, memory.side = spot.rect, spot.side
    return placed


def draw_faces(
    image: np.ndarray, faces: Sequence[FaceResult], *, labels: Sequence[str] = EMOTIONS, bars: bool | str = PIPELINE.bars,
    ids: bool | None = None, follow: LayoutMemory | None = None,
) -> np.ndarray:
    """A BGR copy of `image` with every face boxed and labelled, and score bars per `bars`:
    "largest" (default; in a video, `follow`'s choice), "all" or "none" (True / False: all /
    none). No label or bar covers another face (`plan_layout` decides where each goes)."""
    import cv2

    img = to_bgr(image)
    layout = plan_layout(faces, img.shape, labels=labels, bars=bars, ids=ids, follow=follow)
    for tag in layout.tags:
        bx, by, bw, bh = tag.face.box
        color = color_of(tag.face.label, labels)
        cv2.rectangle(img, (bx, by), (bx + bw, by + bh), color, max(2, int(round(2 * layout.unit))))
        _label_box(img, tag.text, tag.rect[0], tag.rect[1], color, hex_to_bgr(ink_of(tag.face.label, labels)), tag.unit)
    for spot in layout.bars:  # last: a close-up's panel lies over its own box
        x, y, w, h = spot.rect
        if spot.kind == "panel":
            draw_bars(img, spot.face.scores, x, y, layout.unit, labels, width=w, shown=spot.face.label)
        else:
            draw_mini_bars(img, spot.face.scores, x, y, h, labels)
    return img


def draw_fps(img: np.ndarray, fps: float) -> None:

    u = _unit(img.shape)
    _label_box(img, f"{fps:.0f} fps", int(6 * u), int(6 * u), (40, 40, 40), (255, 255, 255), u)


def score_panel(scores: dict[str, float] | None, height: int, width: int = 260, labels: Sequence[str] = EMOTIONS, title: str = "") -> np.ndarray:
    """A (height, width, 3) side panel: a large bar graph of one face's scores, for live views."""
    import cv2

    panel = np.full((height, width, 3), 30, np.uint8)
    u = max(0.8, height / 480.0) * width / 260.0
    cv2.putText(panel, title or "emotions", (int(10 * u), int(28 * u)), _FONT, 0.6 * u, (255, 255, 255), max(1, int(round(u * 1.3))), cv2.LINE_AA)
    if not scores:
        cv2.putText(panel, "no face", (int(10 * u), int(60 * u)), _FONT, 0.55 * u, (160, 160, 160), 1, cv2.LINE_AA)
        return panel
    row = min(int(44 * u), (height - int(50 * u)) // len(labels))
    for i, name in enumerate(labels):
        p = float(scores.get(name, 0.0))
        y0 = int(44 * u) + i * row
        cv2.putText(panel, f"{name} {p * 100:.0f}%", (int(10 * u), y0 + int(row * 0.38)), _FONT, 0.48 * u, (230, 230, 230), 1, cv2.LINE_AA)
        cv2.rectangle(panel, (int(10 * u), y0 + int(row * 0.48)), (width - int(10 * u), y0 + int(row * 0.85)), (70, 70, 70), -1)
        cv2.rectangle(panel, (int(10 * u), y0 + int(row * 0.48)), (int(10 * u + (width - 20 * u) * p), y0 + int(row * 0.85)), color_of(name, labels), -1)
    return panel
