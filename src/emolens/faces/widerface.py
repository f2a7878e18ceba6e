"""Score face detectors on WIDER FACE: read the official annotation file, match detections.

The ground-truth file (`wider_face_val_bbx_gt.txt` and its subsets) lists, per image, its path
under `images/`, the face count, then one line per face: `x1 y1 w h blur expression
illumination invalid occlusion pose`; an image with no face has one line of zeros.

Matching follows the official protocol where it matters for recall: detections are taken in
order of confidence, each matches the unmatched face it overlaps most at IoU >= 0.5, and faces
flagged invalid are "ignored": they count neither as missed nor, when a detection lands on one,
as a false detection. emolens applies the same rule to faces under `min_height` (20 px): too small
to read an expression, so a detector that finds them is neither rewarded nor punished.

Example::

    images = read_ground_truth("wider_face_val5_bbx_gt.txt")
    tally = DetectionTally()
    tally.add(images[0].faces, detector.detect(bgr))
    tally.summary()["recall"]["40"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from emolens.errors import DataError
from emolens.faces.base import Box, Detection, iou

MATCH_IOU = 0.5  # the WIDER FACE protocol's overlap for a hit
HEIGHTS = (40, 20, 0)  # recall is reported for faces at least this many pixels high (0 = all)
# The annotators' flags for the hard faces of the wild, as (column of the face line, value, name):
# recall is also reported for the faces of the first height (40 px and up) flagged each way.
CONDITIONS = ((9, 1, "atypical pose"), (6, 1, "extreme illumination"), (4, 2, "heavy blur"), (8, 2, "heavy occlusion"))


@dataclass(frozen=True)
class Face:
    box: Box  # x, y, w, h
    invalid: bool  # the annotators' "invalid" flag: the official evaluation ignores these faces
    conditions: frozenset[str] = frozenset()  # names from CONDITIONS the annotators flagged this face with


@dataclass(frozen=True)
class LabelledImage:
    path: str  # relative to WIDER_val/images/
    faces: tuple[Face, ...]


def read_ground_truth(path: str | Path) -> list[LabelledImage]:
    """The images and faces of an official WIDER FACE `*_bbx_gt.txt` file, in file order."""
    path = Path(path)
    try:
        lines = path.read_text().split("\n")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the WIDER FACE annotation file ({exc.strerror})") from None
    images, i = [], 0
    while i < len(lines) and lines[i].strip():
        name = lines[i].strip()
        try:
            count = int(lines[i + 1])
            rows = [lines[i + 2 + k].split() for k in range(max(count, 1))]
            faces = tuple(_face(r) for r in rows[:count])
        except (IndexError, ValueError):
            raise DataError(f"{path}:{i + 1}: expected an image path, a face count and one 10-number line per face after it") from None
        images.append(LabelledImage(name, faces))
        i += 2 + max(count, 1)  # an image without faces still has one line of zeros
    if not images:
        raise DataError(f"{path}: no images in this WIDER FACE annotation file")
    return images


def _face(fields: list[str]) -> Face:
    """One face line: `x1 y1 w h blur expression illumination invalid occlusion pose`."""
    conditions = frozenset(name for column, value, name in CONDITIONS if int(fields[column]) == value)
    return Face((int(fields[0]), int(fields[1]), int(fields[2]), int(fields[3])), fields[7] == "1", conditions)


def match(faces: tuple[Face, ...], detections: list[Detection], iou_threshold: float = MATCH_IOU) -> tuple[list[bool], list[int | None]]:
    """Greedy matching by confidence: (which faces were found, the face index each detection hit)."""
    found = [False] * len(faces)
    hits: list[int | None] = [None] * len(detections)
    order = sorted(range(len(detections)), key=lambda k: -detections[k].confidence)
    for k in order:
        best, best_iou = None, iou_threshold
        for j, face in enumerate(faces):
            if found[j] or face.box[2] <= 0 or face.box[3] <= 0:
                continue
            overlap = iou(detections[k].box, face.box)
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is not None:
            found[best], hits[k] = True, best
    return found, hits


@dataclass
class DetectionTally:
    """Running counts over images; `summary()` gives recall by height and the false-detection share."""

    min_height: int = 20  # faces below this are ignored like invalid ones (see the module docstring)
    heights: tuple[int, ...] = HEIGHTS  # recall is counted for faces at least this high
    faces: dict[int, int] = field(init=False)  # valid faces counted per height
    found: dict[int, int] = field(init=False)  # of those, found
    condition_faces: dict[str, int] = field(init=False)  # valid faces of heights[0] and up, per condition
    condition_found: dict[str, int] = field(init=False)  # of those, found
    detections: int = 0
    false_detections: int = 0
    ignored_detections: int = 0  # on an invalid face or one under min_height
    images: int = 0

    def __post_init__(self) -> None:
        self.faces, self.found = dict.fromkeys(self.heights, 0), dict.fromkeys(self.heights, 0)
        names = [name for _, _, name in CONDITIONS]
        self.condition_faces, self.condition_found = dict.fromkeys(names, 0), dict.fromkeys(names, 0)

    def add(self, faces: tuple[Face, ...], detections: list[Detection]) -> None:
        found, hits = match(faces, detections)
        self.images += 1
        for face, hit in zip(faces, found, strict=True):
            if face.invalid:
                continue
            for h in self.heights:
                if face.box[3] >= h:
                    self.faces[h] += 1
                    self.found[h] += hit
            if face.box[3] >= self.heights[0]:
                for name in face.conditions:
                    self.condition_faces[name] += 1
                    self.condition_found[name] += hit
        self.detections += len(detections)
        for j in hits:
            if j is None:
                self.false_detections += 1
            elif faces[j].invalid or faces[j].box[3] < self.min_height:
                self.ignored_detections += 1

    def summary(self) -> dict[str, object]:
        counted = self.detections - self.ignored_detections
        return {
            "images": self.images,
            "faces": {str(h): self.faces[h] for h in self.heights},
            "recall": {str(h): self.found[h] / self.faces[h] if self.faces[h] else 0.0 for h in self.heights},
            "condition_faces": dict(self.condition_faces),
            "condition_recall": {name: self.condition_found[name] / n if n else 0.0 for name, n in self.condition_faces.items()},
            "detections": self.detections,
            "ignored_detections": self.ignored_detections,
            "false_detections": self.false_detections,
            "false_share": self.false_detections / counted if counted else 0.0,
        }
