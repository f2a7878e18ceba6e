"""`training_rows`: the rows a model is fitted on, selected on and measured on.

One function for every trainer (the emolens trainer, the classic baselines, the Ultralytics
backend), so "the rows emolens trains on" means the same rows everywhere.

Example::

    rows = training_rows(ds, val_fraction=0.1, train_fraction=0.25, seed=0)
    train, val = ds.subset(rows["train"]), ds.subset(rows["val"])
"""

from __future__ import annotations

import numpy as np

from emolens.data.dataset import SPLITS, FaceDataset
from emolens.errors import ConfigError, DataError

VAL_FRACTION = 0.1  # share of train carved as val when a dataset has none (data.val_fraction's default)


def _draw(rows: np.ndarray, labels: np.ndarray, seed: int, **size: float) -> tuple[np.ndarray, np.ndarray]:
    """Split `rows` in two (sizes as `train_test_split` takes them), sorted; stratified by
    label when every class present has two rows and each side can hold every class."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    if counts[counts > 0].min() >= 2:
        try:
            a, b = train_test_split(rows, random_state=seed, stratify=labels, **size)
            return np.sort(a), np.sort(b)
        except ValueError:  # a side smaller than the number of classes
            pass
    a, b = train_test_split(rows, random_state=seed, **size)
    return np.sort(a), np.sort(b)


def training_rows(ds: FaceDataset, *, val_fraction: float, train_fraction: float = 1.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Sorted row indices of "train", "val" and "test", as a training run uses them.

    The dataset's own splits are kept. A dataset without val rows (one built by hand:
    `load_dataset` always carves one) gets `val_fraction` of train as val, at least one row.
    `train_fraction` < 1 then keeps a share of train, at least one row per class. Both draws
    are seeded, and stratified wherever every class present has two rows and the draw is large
    enough to hold every class.

    These are the draws `emolens train` has always made (`data.val_fraction`, `run.seed`), so
    a recorded run resumes on the same rows and the shipped models' recorded splits keep
    their meaning.
    """
    if not 0 < train_fraction <= 1:
        raise ConfigError(f"train_fraction must be in (0, 1], got {train_fraction}")
    rows = {s: np.flatnonzero(ds.split == i) for i, s in enumerate(SPLITS)}
    train = rows["train"]
    if len(train) == 0:
        raise DataError(f"{ds.source or 'dataset'}: has no training rows (split 'train'); nothing to train on")
    if len(rows["val"]) == 0:
        if len(train) < 2:
            raise DataError(f"{ds.source or 'dataset'}: has 1 training row and no val split; a val row needs a second training row")
        train, rows["val"] = _draw(train, ds.labels[train], seed, test_size=max(val_fraction, 1 / len(train)))
    if train_fraction < 1.0:
        n = max(len(ds.classes), int(round(len(train) * train_fraction)))
        if n < len(train):
            train, _ = _draw(train, ds.labels[train], seed, train_size=n)
    rows["train"] = train
    return rows
