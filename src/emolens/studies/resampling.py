"""SMOTE and SMOTE-ENN (imbalanced-learn): new training rows for the rare classes, made before training.

SMOTE (Chawla et al. 2002) adds, for every class but the largest, points on the segments
between a row and one of its k nearest neighbours of the same class until each class is as
large as the largest. SMOTE-ENN (Batista et al. 2004) then removes every row, real or made,
whose 3 nearest neighbours mostly carry another label (Edited Nearest Neighbours, every class), which cleans
the class borders SMOTE blurred.

The imbalance study applies them to the flattened training faces, as the projects emolens learns
from did (each made face is a pixel-wise blend of two real ones), and the baselines to the
features. Validation and test rows are never resampled.

Example::

    X_res, y_res = resample_arrays(X, y, "smote", seed=0)
    train_ds = resample_faces(ds, rows, "smote_enn", seed=0)   # train rows resampled, val/test kept
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emolens.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from emolens.data import FaceDataset

RESAMPLERS: tuple[str, ...] = ("smote", "smote_enn")
K_NEIGHBORS = 5  # imbalanced-learn's default; fewer when a class has fewer rows


def _sampler(method: str, k: int, seed: int) -> object:
    from emolens.extras import import_extra

    over = import_extra("imblearn.over_sampling", "imbalance", f"the {method} strategy (imbalanced-learn)")
    smote = over.SMOTE(k_neighbors=k, random_state=seed)
    if method == "smote":
        return smote
    combine = import_extra("imblearn.combine", "imbalance", f"the {method} strategy (imbalanced-learn)")
    # SMOTEENN's own ENN: 3 neighbours, every class cleaned ("all"). An ENN built here would
    # default to "not minority" and, with all classes equal after SMOTE, spare the first one.
    return combine.SMOTEENN(smote=smote, random_state=seed)


def check_resampler(method: str) -> None:
    """ConfigError for an unknown method or a missing `imbalance` extra, before any slow work."""
    if method not in RESAMPLERS:
        raise ConfigError(f"unknown resampling method {method!r}; expected one of {', '.join(RESAMPLERS)}")
    _sampler(method, K_NEIGHBORS, 0)


def require_resamplers(strategies: list[str]) -> None:
    """Check the resampling strategies among `strategies` (others are not this module's), so a
    missing extra fails now, before features are computed or other strategies train for hours."""
    for method in dict.fromkeys(strategies):
        if method in RESAMPLERS:
            check_resampler(method)


def resample_arrays(X: np.ndarray, y: np.ndarray, method: str, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) resampled by `method`; rows are float32 features, labels int64. Seeded: the same call gives the same rows."""
    check_resampler(method)
    present = np.bincount(y)[np.unique(y)]
    if len(present) < 2:
        raise DataError(f"{method}: the training rows hold one class only; there is nothing to balance")
    if present.min() < 2:
        raise DataError(f"{method}: a class has a single training row; SMOTE needs two rows of a class to make new ones")
    sampler = _sampler(method, min(K_NEIGHBORS, int(present.min()) - 1), seed)
    X_res, y_res = sampler.fit_resample(np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64))  # type: ignore[attr-defined]
    kept = np.unique(y_res)
    if len(kept) < 2:  # ENN removes every row its neighbours outvote: on unseparated rows, nearly all
        raise DataError(
            f"{method}: kept {len(y_res)} of the {len(y)} training rows ({len(kept)} class(es)); nothing to train on. "
            "Its neighbours disagree with the labels almost everywhere: use smote or another strategy on these rows"
        )
    return np.asarray(X_res, dtype=np.float32), np.asarray(y_res, dtype=np.int64)


def resample_faces(ds: FaceDataset, rows: dict[str, np.ndarray], method: str, *, seed: int = 0) -> FaceDataset:
    """A dataset whose train split is `ds`'s `rows["train"]` resampled as pixels; `rows["val"]` and test unchanged.

    Made faces are rounded back to uint8 and named "<method> k". The val rows are marked val, so a
    training run takes them as they are instead of carving val out of the resampled faces.
    Soft labels (FER+ votes) are dropped: SMOTE interpolates hard labels only.
    """
    from dataclasses import replace

    from emolens.data.dataset import SPLITS

    train = rows["train"]
    n, side = len(train), ds.image_size
    X_res, y_res = resample_arrays(ds.images[train].reshape(n, -1), ds.labels[train], method, seed=seed)
    made = np.clip(np.rint(X_res), 0, 255).astype(np.uint8).reshape(-1, side, side)
    # SMOTE-ENN removes real rows too, so a resampled row cannot be traced to a file: name by position.
    names = np.array([f"{method} {k}" for k in range(len(made))], dtype=object)
    keep = np.concatenate([rows["val"], rows["test"]])
    return replace(
        ds,
        images=np.concatenate([made, ds.images[keep]]),
        labels=np.concatenate([y_res, ds.labels[keep]]).astype(ds.labels.dtype),
        split=np.concatenate([
            np.full(len(made), SPLITS.index("train")), np.full(len(rows["val"]), SPLITS.index("val")),
            np.full(len(rows["test"]), SPLITS.index("test")),
        ]).astype(ds.split.dtype),
        names=np.concatenate([names, ds.names[keep]]),
        soft_labels=None,
        source=f"{ds.source} (train resampled by {method})",
        skipped=list(ds.skipped),
    )
