"""Export a face dataset in the Ultralytics classification layout.

    OUT/train/<class>/<file>.png
    OUT/val/<class>/<file>.png
    OUT/test/<class>/<file>.png      (when the dataset has a test split)
    OUT/manifest.csv                 one row per image: file, split, label, source name

`yolo classify train data=OUT` (or `emolens train --backend ultralytics`) reads it as is.
Every class gets a folder in every split, even an empty one, because Ultralytics numbers the
classes by their sorted folder names and the splits must agree. Images are written as
lossless grayscale PNG, so the exported pixels are exactly the pixels emolens trains on.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolens.errors import DataError
from emolens.export.formats import DatasetFormat, parse_format

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset

LAYOUT_SPLITS: tuple[str, ...] = ("train", "val", "test")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _file_name(row: int, source_name: str) -> str:
    """A unique, portable file name: the row number, then the source file's stem for humans."""
    stem = Path(str(source_name).replace("\\", "/")).stem
    stem = _SAFE.sub("_", stem).strip("._")[:60]
    return f"{row:06d}_{stem}.png" if stem else f"{row:06d}.png"


def to_ultralytics_cls(dataset: FaceDataset, out_dir: str | Path, *, progress: bool = False) -> dict[str, dict[str, int]]:
    """Write `dataset` into `out_dir` in the Ultralytics classification layout.

    `out_dir` must not exist or be empty: an export never mixes with, or overwrites, other
    files. Returns the number of images written per split and class.

    >>> counts = to_ultralytics_cls(load_dataset("archive.zip"), "fer2013-yolo")  # doctest: +SKIP
    >>> counts["val"]["disgust"]                                                  # doctest: +SKIP
    56
    """
    import cv2
    from tqdm.auto import tqdm

    from emolens.data import SPLITS

    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not an empty folder; exports never write into existing files, choose a new OUT")
    if len(dataset) == 0:
        raise DataError(f"{dataset.source or 'dataset'}: holds no images to export")
    for needed in ("train", "val"):
        if not dataset.has_split(needed):
            raise DataError(f"{dataset.source or 'dataset'}: has no {needed!r} split; Ultralytics needs train and val")
    classes = tuple(dataset.classes)
    if len(set(classes)) != len(classes) or any(not c or _SAFE.search(c) for c in classes):
        raise DataError(f"class names {list(classes)} must be distinct plain names (letters, digits, _ . -) to become folders")
    splits = [s for s in LAYOUT_SPLITS if dataset.has_split(s)]
    for s in splits:
        for c in classes:
            (out / s / c).mkdir(parents=True, exist_ok=True)
    counts = {s: dict.fromkeys(classes, 0) for s in splits}
    rows = []
    order = np.flatnonzero(np.isin(dataset.split, [SPLITS.index(s) for s in splits]))
    for i in tqdm(order, desc="exporting", unit="img", disable=not progress, mininterval=1.0):
        split, label = SPLITS[int(dataset.split[i])], classes[int(dataset.labels[i])]
        rel = Path(split) / label / _file_name(int(i), dataset.names[i])
        if not cv2.imwrite(str(out / rel), dataset.images[i]):
            raise DataError(f"{out / rel}: could not be written (disk full or not writable?)")
        counts[split][label] += 1
        rows.append((rel.as_posix(), split, label, str(dataset.names[i])))
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "split", "label", "source_name"])
        writer.writerows(rows)
    return counts


def export_dataset(
    path: str | Path, out: str | Path, *, format: DatasetFormat | str = DatasetFormat.ultralytics_cls, image_size: int | None = None,
) -> dict[str, dict[str, int]]:
    """Read any dataset emolens reads and export it (`emolens export-dataset`)."""
    from emolens.data import load_dataset
    from emolens.preprocessing import PreprocessConfig

    parse_format(DatasetFormat, format)  # the one layout today; ConfigError naming the choices otherwise
    ds = load_dataset(path, image_size=image_size or PreprocessConfig().image_size)
    return to_ultralytics_cls(ds, out, progress=True)
