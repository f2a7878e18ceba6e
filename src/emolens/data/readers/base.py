"""What every dataset reader shares: the options it honours, the raw arrays it returns, and the
small base class `load_dataset` talks to.

A reader turns one source (a zip, a folder tree, a CSV) into `RawData`: decoded uint8 faces,
label indices into `EMOTIONS`, a split index per row (-1 where the source says nothing), and one
message per item it could not use. Readers never assign missing splits and never cache;
`emolens.data.loading` does both, the same way for every format.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emolens.data.dataset import SPLITS
from emolens.errors import ConfigError
from emolens.labels import EMOTIONS
from emolens.preprocessing import PreprocessConfig, load_image, prepare_face

UNASSIGNED = -1  # split index of a row whose source names no split

# FER-2013 file-name prefixes (Kaggle edition) and the split each one is.
FER_PREFIXES: dict[str, str] = {"training": "train", "publictest": "val", "privatetest": "test"}
# Split-folder spellings found in folder datasets.
SPLIT_DIRS: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "publictest": "val",
    "test": "test", "testing": "test", "privatetest": "test",
}
# Exactly FER-2013's own file names, so a user's "training_01.png" in a val/ folder stays val.
_FER_NAME = re.compile(r"^(Training|PublicTest|PrivateTest)_\d+\.\w+$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
# OS litter that is never meant as data, so it is ignored without a message.
IGNORED_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
# Largest image file read into memory: a 48x48 face is ~2 KB and a 24-megapixel JPEG ~15 MB, so
# anything larger is a video or a bomb. Module-level so tests (and odd datasets) can change it.
MAX_IMAGE_BYTES = 64 << 20


class SkipItem(Exception):  # a signal between a reader and decode_tree, never seen by users
    """Raised by a reader's byte source: the item is skipped, the message says why (without its name)."""


@dataclass(frozen=True)
class ReadOptions:
    """The options that change what a reader returns; all of them are part of the cache key."""

    image_size: int = PreprocessConfig.image_size
    label_map: dict[str, str | None] | None = None
    ferplus: Path | None = None
    ferplus_sha256: str = ""
    soft_labels: bool = False

    def key(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "label_map": sorted((k.lower(), v) for k, v in (self.label_map or {}).items()),
            "ferplus_sha256": self.ferplus_sha256,
            "soft_labels": self.soft_labels,
        }

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size, input_size=self.image_size)


@dataclass
class RawData:
    """A reader's output, before missing splits are filled in."""

    images: np.ndarray  # (N, S, S) uint8
    labels: np.ndarray  # (N,) int64 index into EMOTIONS
    split: np.ndarray  # (N,) int8 index into SPLITS, or UNASSIGNED
    names: np.ndarray  # (N,) str
    soft_labels: np.ndarray | None = None  # (N, 7) float32
    skipped: list[str] = field(default_factory=list)
    ignored_classes: dict[str, int] = field(default_factory=dict)  # class name -> images not loaded
    layout: str = ""  # what the reader recognised, e.g. "kaggle zip (train/<class>, test/<class>)"

    def meta(self) -> dict[str, Any]:
        return {"ignored_classes": self.ignored_classes, "layout": self.layout}

    @classmethod
    def from_meta(cls, arrays: dict[str, np.ndarray], meta_json: str) -> RawData:
        meta = json.loads(meta_json)
        return cls(
            images=arrays["images"], labels=arrays["labels"], split=arrays["split"], names=arrays["names"],
            soft_labels=arrays.get("soft_labels"), skipped=[str(s) for s in arrays["skipped"]],
            ignored_classes={str(k): int(v) for k, v in meta["ignored_classes"].items()}, layout=meta["layout"],
        )


class RawBuilder:
    """Collects decoded rows one at a time, then packs them into `RawData`."""

    def __init__(self, image_size: int, layout: str = "") -> None:
        self.image_size = image_size
        self.layout = layout
        self.images: list[np.ndarray] = []
        self.labels: list[int] = []
        self.split: list[int] = []
        self.names: list[str] = []
        self.soft: list[np.ndarray] = []
        self.skipped: list[str] = []
        self.ignored_classes: dict[str, int] = {}

    def add(self, image: np.ndarray, label: int, split: int, name: str, soft: np.ndarray | None = None) -> None:
        self.images.append(image)
        self.labels.append(label)
        self.split.append(split)
        self.names.append(name)
        if soft is not None:
            self.soft.append(soft)

    def skip(self, message: str) -> None:
        self.skipped.append(message)

    def ignore_class(self, class_name: str, item: str) -> None:
        self.ignored_classes[class_name] = self.ignored_classes.get(class_name, 0) + 1
        self.skipped.append(
            f"{item}: class {class_name!r} is not one of the 7 emotions ({', '.join(EMOTIONS)}); "
            f"skipped (map it with label_map={{{class_name!r}: 'happy'}} to keep it)"
        )

    def build(self) -> RawData:
        s = self.image_size
        n = len(self.images)
        images = np.stack(self.images) if n else np.zeros((0, s, s), np.uint8)
        soft = None
        if self.soft:
            if len(self.soft) != n:  # pragma: no cover - a reader bug, not user input
                raise RuntimeError("soft labels given for some rows only")
            soft = np.stack(self.soft).astype(np.float32)
        return RawData(
            images=images, labels=np.asarray(self.labels, np.int64), split=np.asarray(self.split, np.int8),
            names=np.asarray(self.names, dtype=str), soft_labels=soft, skipped=self.skipped,
            ignored_classes=self.ignored_classes, layout=self.layout,
        )


def _decode_gray_jpeg(data: bytes) -> np.ndarray | None:
    """8-bit grayscale JPEG -> (H, W) uint8 via OpenCV, else None.

    Pillow spends most of its time per image in Python bookkeeping, which dominates for 48x48
    faces; OpenCV decodes the same libjpeg output about 10x faster (identical pixels on all of
    FER-2013). Colour, 16-bit, truncated or odd files return None and take Pillow's path, so
    they are converted and reported exactly as `load_image` does for photos.
    """
    if not (data[:2] == b"\xff\xd8" and data.rstrip(b"\0")[-2:] == b"\xff\xd9"):
        return None
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 2 or img.dtype != np.uint8:
        return None
    return img


def decode_face(data: bytes, name: str, cfg: PreprocessConfig) -> np.ndarray:
    """Image file bytes -> (S, S) uint8 face, exactly as every other emolens image is prepared."""
    gray = _decode_gray_jpeg(data)
    return prepare_face(gray if gray is not None else load_image(data, name=name), cfg)


def split_from_path(parts: tuple[str, ...]) -> int:
    """Split index from a FER-2013 file-name prefix (Training_..., PublicTest_..., PrivateTest_...),
    else from the first folder named like a split, else UNASSIGNED."""
    m = _FER_NAME.match(parts[-1])
    if m:
        return SPLITS.index(FER_PREFIXES[m.group(1).lower()])
    for part in parts[:-1]:
        if part.lower() in SPLIT_DIRS:
            return SPLITS.index(SPLIT_DIRS[part.lower()])
    return UNASSIGNED


def is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


class Reader(ABC):
    """One data format. `detect` looks without decoding; `fingerprint` hashes the content;
    `read` decodes everything."""

    format: ClassVar[str]  # short name, part of the cache key
    has_votes: ClassVar[bool] = False  # the source carries FER+ vote counts of its own (soft labels without ferplus=)
    description: ClassVar[str]  # the layout, as quoted in "unknown layout" errors

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    @abstractmethod
    def detect(cls, path: Path) -> bool:
        """True when `path` looks like this format (cheap: names and headers only)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """sha256 (hex) of the source's content."""

    @abstractmethod
    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        """Decode the whole source."""

    def check_options(self, options: ReadOptions) -> None:
        if options.ferplus is not None or options.soft_labels:
            raise ConfigError(
                f"{self.path}: FER+ labels (ferplus=, soft_labels=) only apply to the original fer2013.csv, "
                f"whose rows they are aligned with; this source is a {self.description}"
            )
