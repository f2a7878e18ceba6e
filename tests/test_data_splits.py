"""`training_rows`: the one draw of train / val rows that every trainer uses."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.data import SPLITS, FaceDataset
from emolens.data.splits import training_rows
from emolens.errors import ConfigError, DataError


def _dataset(labels: list[int], split: list[int]) -> FaceDataset:
    n = len(labels)
    return FaceDataset(
        images=np.zeros((n, 4, 4), np.uint8), labels=np.array(labels, np.int64), split=np.array(split, np.int8),
        names=np.array([f"row {i}" for i in range(n)]),
    )


def test_a_dataset_with_val_keeps_its_splits() -> None:
    ds = _dataset([0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 2, 2])
    rows = training_rows(ds, val_fraction=0.5, seed=0)
    assert [r.tolist() for r in rows.values()] == [[0, 1, 2], [3], [4, 5]]


def test_val_is_carved_from_train_stratified_and_seeded() -> None:
    labels = [k for k in range(7) for _ in range(10)]
    ds = _dataset(labels, [SPLITS.index("train")] * 70)
    rows = training_rows(ds, val_fraction=0.2, seed=3)
    assert len(rows["val"]) == 14 and np.bincount(ds.labels[rows["val"]]).tolist() == [2] * 7
    assert not set(rows["val"]) & set(rows["train"]) and len(rows["train"]) == 56
    assert all(np.array_equal(a, b) for a, b in zip(rows.values(), training_rows(ds, val_fraction=0.2, seed=3).values(), strict=True))
    share = training_rows(ds, val_fraction=0.2, train_fraction=0.25, seed=3)
    assert len(share["train"]) == 14 and set(share["train"]) <= set(rows["train"])
    assert np.array_equal(share["val"], rows["val"])  # the share is drawn after val, so val stays the same


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(DataError, match="no training rows"):
        training_rows(_dataset([0, 1], [2, 2]), val_fraction=0.1)
    with pytest.raises(ConfigError, match=r"train_fraction must be in \(0, 1\]"):
        training_rows(_dataset([0, 1], [0, 1]), val_fraction=0.1, train_fraction=0.0)


def test_the_baselines_train_on_the_rows_the_trainer_uses() -> None:
    from emolens.baselines import run_baselines
    from emolens.data.synthetic import make_synthetic_dataset
    from emolens.training import load_config
    from emolens.training.trainer import split_train_val

    ds = make_synthetic_dataset(12, 24, seed=0)
    ds = ds.subset(ds.split != SPLITS.index("val"))  # no val: both must carve the same one
    cfg = load_config(overrides=["data.train_fraction=0.5"])
    train, _ = split_train_val(ds, cfg)
    cmp = run_baselines(ds, features=["pca"], params={"pca": {"n_components": 4}}, out=None, train_fraction=0.5)
    assert cmp.runs[0].n_train == len(train)
