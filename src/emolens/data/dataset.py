"""`FaceDataset`: decoded faces in memory, the one form every reader produces.

Images are stored once as a compact uint8 array (N, S, S), so no epoch re-decodes a JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emolens.errors import DataError
from emolens.labels import EMOTIONS

SPLITS: tuple[str, ...] = ("train", "val", "test")  # FER-2013: Training, PublicTest, PrivateTest


@dataclass
class FaceDataset:
    images: np.ndarray  # (N, S, S) uint8 grayscale face crops
    labels: np.ndarray  # (N,) int64 index into `classes`
    split: np.ndarray  # (N,) int8 index into SPLITS
    names: np.ndarray  # (N,) str: file path inside the source, or "row 17" for CSV rows
    soft_labels: np.ndarray | None = None  # (N, C) float32 label distributions (FER+ votes)
    classes: tuple[str, ...] = EMOTIONS
    source: str = ""
    source_sha256: str = ""  # content hash of the source; recorded beside trained weights
    skipped: list[str] = field(default_factory=list)  # one message per item that was not loaded

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise DataError(f"images must be (N, S, S) uint8, got {self.images.shape} {self.images.dtype}")
        for name, arr in (("labels", self.labels), ("split", self.split), ("names", self.names)):
            if len(arr) != n:
                raise DataError(f"{name} has {len(arr)} entries but there are {n} images")
        if self.soft_labels is not None and self.soft_labels.shape != (n, len(self.classes)):
            raise DataError(f"soft_labels must be ({n}, {len(self.classes)}), got {self.soft_labels.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def subset(self, split: str | np.ndarray) -> FaceDataset:
        """Rows of one split ("train", "val", "test"), or those picked by a boolean/int index."""
        if isinstance(split, str):
            if split not in SPLITS:
                raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
            idx = np.flatnonzero(self.split == SPLITS.index(split))
        else:
            idx = np.asarray(split)
        return replace(
            self,
            images=self.images[idx], labels=self.labels[idx], split=self.split[idx], names=self.names[idx],
            soft_labels=None if self.soft_labels is None else self.soft_labels[idx], skipped=list(self.skipped),
        )

    def has_split(self, split: str) -> bool:
        return bool((self.split == SPLITS.index(split)).any())

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        labels = self.labels if split is None else self.labels[self.split == SPLITS.index(split)]
        counts = np.bincount(labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}
