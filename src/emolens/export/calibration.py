"""The faces int8 quantisation calibrates on: training faces, read by emolens's one data path.

Static int8 (ONNX and TFLite) measures the range of every activation on real faces before it
fixes the int8 scales. Those faces come from `emolens.data.load_dataset` and, of its rows, the
ones `emolens.data.splits.training_rows` calls train, the rows a training run fits on; so a
calibration never sees a validation or test face, whatever the dataset's layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emolens.errors import ConfigError, DataError

CALIBRATION_FACES = 512  # enough for stable activation ranges; the README's int8 figures use 512


def load_calibration_faces(source: str | Path, preprocess: Any, limit: int = CALIBRATION_FACES) -> np.ndarray:
    """Up to `limit` training faces (N, S, S) uint8 of any dataset `load_dataset` reads.

    `preprocess` is the model's PreprocessConfig: faces are decoded at its image_size. The
    faces are spread evenly over the training rows (deterministic, and across the class
    folders of a folder dataset, which are stored in order).
    """
    from emolens.data import load_dataset
    from emolens.data.splits import VAL_FRACTION, training_rows

    if limit < 1:
        raise ConfigError(f"calibration needs at least one face, got limit={limit}")
    ds = load_dataset(source, image_size=preprocess.image_size, progress=False)
    train = training_rows(ds, val_fraction=VAL_FRACTION)["train"]
    picks = train[np.unique(np.linspace(0, len(train) - 1, min(limit, len(train))).round().astype(int))]
    return ds.images[picks]


def check_calibration_faces(faces: Any) -> np.ndarray:
    """Calibration faces as given in Python: uint8 (N, S, S), at least one."""
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.dtype != np.uint8 or len(faces) == 0:
        raise DataError(f"calibration faces must be uint8 (N, S, S) with N >= 1, got {faces.dtype} {faces.shape}")
    return faces


def calibration_faces(calibration: np.ndarray | str | Path | None, preprocess: Any) -> np.ndarray | None:
    """Faces from a dataset path, an array of faces, or None (no calibration)."""
    if calibration is None:
        return None
    if isinstance(calibration, str | Path):
        return load_calibration_faces(calibration, preprocess)
    return check_calibration_faces(calibration)
