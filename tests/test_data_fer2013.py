"""The real FER-2013 Kaggle archive (skipped when absent): counts from its README."""

from __future__ import annotations

import time

import numpy as np
import pytest

from emolens.data import load_dataset
from emolens.data.stats import dataset_stats, duplicate_mask
from emolens.preprocessing import PreprocessConfig

pytestmark = [pytest.mark.fer2013, pytest.mark.slow]

# /work/shared/datasets/fer2013/README.md
EXPECTED = {
    "train": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171},
    "val": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "neutral": 607, "sad": 653, "surprise": 415},
    "test": {"angry": 491, "disgust": 55, "fear": 528, "happy": 879, "neutral": 626, "sad": 594, "surprise": 416},
}
ARCHIVE_SHA256 = "268142ed6b16cd82910fc12f5303f1c841d67f3e4b5ecdc5ad8f700065c4e2b7"


def test_fer2013_archive_counts_and_cache(fer_archive):
    t0 = time.perf_counter()
    ds = load_dataset(fer_archive, progress=False)
    first = time.perf_counter() - t0
    assert ds.source_sha256 == ARCHIVE_SHA256 and ds.skipped == []
    S = PreprocessConfig().image_size  # FER-2013's native size
    assert ds.images.shape == (35887, S, S) and ds.images.dtype == np.uint8
    for split, counts in EXPECTED.items():
        assert ds.class_counts(split) == counts
    assert [len(ds.subset(s)) for s in EXPECTED] == [28709, 3589, 3589]
    assert all(n.startswith("train/") and "/Training_" in n for n in ds.subset("train").names)
    assert all("/PrivateTest_" in n for n in ds.subset("test").names)

    t0 = time.perf_counter()
    cached = load_dataset(fer_archive, progress=False)
    assert time.perf_counter() - t0 < first
    assert np.array_equal(cached.images, ds.images) and np.array_equal(cached.split, ds.split)

    d = dataset_stats(ds).duplicates
    assert d["distinct_images"] == 34034 and d["groups"] == 1516 and d["conflicting_label_groups"] == 57  # README figures
    assert duplicate_mask(ds, "test", "train").sum() == d["across"]["train&test"]["test"]
