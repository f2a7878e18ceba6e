"""`load_dataset`: any supported source -> `FaceDataset`, decoded once and cached.

Example::

    ds = load_dataset("~/Downloads/archive.zip")      # Kaggle FER-2013 zip, read in place
    ds.class_counts("train")["disgust"]                # 436
    train, val = ds.subset("train"), ds.subset("val")
    fp = load_dataset("fer2013.csv", ferplus="fer2013new.csv", soft_labels=True)
    fp.soft_labels                                     # (N, 7) FER+ vote shares, EMOTIONS order
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from emolens.data.cache import cache_key, hash_file, load_cached, save_cached
from emolens.data.dataset import SPLITS, FaceDataset
from emolens.data.readers import READERS, supported_layouts
from emolens.data.readers.base import UNASSIGNED, RawData, Reader, ReadOptions
from emolens.data.readers.ferplus import read_ferplus
from emolens.errors import ConfigError, DataError
from emolens.labels import EMOTIONS
from emolens.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)
# Sources that may be the Kaggle FER-2013 download, which FER+ reaches through the shipped map.
KAGGLE_FORMATS = ("zip", "folder")
_MAX_LISTED = 5  # skipped items quoted in the warning; all of them are in FaceDataset.skipped


class DataWarning(UserWarning):
    """Some items of a dataset were skipped; `FaceDataset.skipped` says which and why."""


def detect_reader(path: str | Path) -> Reader:
    """The reader for `path`, or DataError listing the layouts emolens understands."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; expected one of:\n{supported_layouts()}")
    for reader_cls in READERS:
        if reader_cls.detect(p):
            return reader_cls(p)
    what = "folder" if p.is_dir() else f"file ({p.suffix or 'no extension'})"
    raise DataError(f"{p}: unknown dataset layout for this {what}; expected one of:\n{supported_layouts()}")


def _validate(image_size: int, label_map: dict[str, str | None] | None, val_fraction: float, test_fraction: float) -> None:
    PreprocessConfig(image_size=image_size, input_size=image_size)  # raises ConfigError on a bad size
    if label_map is not None:
        if not isinstance(label_map, dict):
            raise ConfigError(f"label_map must be a dict of class name -> emotion (or None), got {type(label_map).__name__}")
        for name, target in label_map.items():
            if target is not None and target not in EMOTIONS:
                raise ConfigError(f"label_map sends {name!r} to {target!r}; expected one of {', '.join(EMOTIONS)} or None to drop it")
    for arg, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= v < 1:
            raise ConfigError(f"{arg} must be in [0, 1), got {v}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction must be below 1 (some data must stay for training), got {val_fraction + test_fraction}")


def _carve(labels: np.ndarray, pool: np.ndarray, n_out: int, seed: int) -> np.ndarray:
    """Pick `n_out` of the `pool` indices, stratified by label where every class allows it."""
    from sklearn.model_selection import train_test_split

    if n_out <= 0 or len(pool) < 2:
        return np.zeros(0, np.int64)
    n_out = min(n_out, len(pool) - 1)
    try:
        _, out = train_test_split(pool, test_size=n_out, random_state=seed, stratify=labels[pool])
    except ValueError:  # a class with a single image, or fewer picks than classes
        _, out = train_test_split(pool, test_size=n_out, random_state=seed)
    return np.sort(out)


def assign_splits(labels: np.ndarray, split: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Fill in the splits a source does not provide, from its training rows.

    Rows without a split count as training. When the source has no test rows, `test_fraction`
    of that pool becomes test; when it has no val rows, `val_fraction` of it becomes val. A
    source that names all three splits (FER-2013) is returned unchanged. Seeded, stratified.
    """
    split = split.copy()
    split[split == UNASSIGNED] = SPLITS.index("train")
    train, val, test = (SPLITS.index(s) for s in ("train", "val", "test"))
    pool = np.flatnonzero(split == train)
    n = len(pool)
    n_test = round(test_fraction * n) if not (split == test).any() else 0
    n_val = round(val_fraction * n) if not (split == val).any() else 0
    picked = _carve(labels, pool, n_test, seed)
    split[picked] = test
    pool = np.setdiff1d(pool, picked)
    split[_carve(labels, pool, n_val, seed + 1)] = val
    return split


# Faces FER+'s own rule drops (`readers.ferplus.ferplus_label`, `ferplus_map.attach_ferplus`): by
# design, not damage, so the summary counts them apart from unreadable items.
_FERPLUS_RULE = ("FER+ votes tied", "FER+ majority is", "no votes among the 7 emotions", "FER+ judged it not a face")


def _summarise(source: Path, raw: RawData, loaded: int) -> str:
    parts = []
    if raw.ignored_classes:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(raw.ignored_classes.items()))
        parts.append(f"classes not among the 7 emotions: {listed}")
    by_rule = [m for m in raw.skipped if any(r in m for r in _FERPLUS_RULE)]
    if by_rule:
        parts.append(f"{len(by_rule)} without a FER+ majority among the 7 emotions (contempt, unknown, not a face, ties), "
                     "left out as the FER+ paper does")
    other = [m for m in raw.skipped if "is not one of the 7 emotions" not in m and not any(r in m for r in _FERPLUS_RULE)]
    if other:
        parts.append(f"{len(other)} unreadable or misplaced, e.g. " + " | ".join(other[:_MAX_LISTED]))
    return f"{source}: loaded {loaded} images, skipped {len(raw.skipped)} items ({'; '.join(parts)}); see FaceDataset.skipped"


def _read_cached(reader: Reader, source_sha256: str, options: ReadOptions, *, cache: bool, progress: bool) -> RawData:
    key = cache_key(reader.format, source_sha256, options.key())
    raw = load_cached(key) if cache else None
    if raw is None:
        t0 = time.perf_counter()
        raw = reader.read(options, progress=progress)
        log.info("decoded %s (%s): %d images in %.1f s", reader.path, raw.layout, len(raw.images), time.perf_counter() - t0)
        if cache and len(raw.images):
            save_cached(key, raw)
    return raw


def _check_label_options(reader: Reader, ferplus_path: Path | None, soft_labels: bool, fer2013_share: float) -> None:
    """The FER+ options fit the source: the label file exists, votes exist for soft labels, and
    fer2013_share has FER-2013 labels to mix in."""
    if ferplus_path is not None and not ferplus_path.is_file():
        raise DataError(f"{ferplus_path}: FER+ label file not found; expected fer2013new.csv from github.com/microsoft/FERPlus")
    if soft_labels and ferplus_path is None and not reader.has_votes:
        raise ConfigError(
            "soft_labels=True needs FER+ votes: pass ferplus='path/to/fer2013new.csv' with the fer2013.csv source, "
            "or load the FER+ image folders (FER2013Train/ ... with label.csv)"
        )
    if fer2013_share and not (soft_labels and ferplus_path is not None and reader.format in KAGGLE_FORMATS):
        raise ConfigError(
            "fer2013_share mixes a face's FER-2013 label into its FER+ vote shares: it needs the Kaggle FER-2013 download "
            "with ferplus='fer2013new.csv' and soft_labels=True"
        )
    if not 0.0 <= fer2013_share <= 1.0:
        raise ConfigError(f"fer2013_share must be in [0, 1], got {fer2013_share}")


def load_dataset(
    path: str | Path,
    *,
    label_map: dict[str, str | None] | None = None,
    image_size: int = PreprocessConfig.image_size,
    ferplus: str | Path | None = None,
    soft_labels: bool = False,
    fer2013_share: float = 0.0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> FaceDataset:
    """Read a face dataset into memory as (N, image_size, image_size) uint8 faces.

    Sources, detected from the path: the Kaggle FER-2013 zip (read in place), its extracted
    folders, the original `fer2013.csv` (optionally relabelled by FER+ `ferplus=fer2013new.csv`,
    as majority votes or, with `soft_labels`, vote distributions; the Kaggle zip and its folders
    too, through the map emolens ships, where `fer2013_share` mixes each face's FER-2013 label into
    its votes), the FER+ image folders (`FER2013Train/` ... with `label.csv`), or any folder-per-class
    dataset (class names like `Happiness/` mapped by `labels.canonical_label` and `label_map`;
    map a class to None to drop it). Splits come from the source where it has them (FER-2013
    file prefixes, split folders, the CSV's Usage); missing ones are carved from the training
    rows, stratified and seeded (`val_fraction`, `test_fraction`, `seed`).

    Decoded rows are cached under `$EMOLENS_CACHE_DIR` keyed by the source's content hash and
    the options, so the second load skips decoding. Unusable items are skipped, listed in
    `FaceDataset.skipped` and summarised in one `DataWarning`; DataError when nothing is left.
    """
    _validate(image_size, label_map, val_fraction, test_fraction)
    reader = detect_reader(path)
    ferplus_path = Path(ferplus).expanduser() if ferplus is not None else None
    _check_label_options(reader, ferplus_path, soft_labels, fer2013_share)
    options = ReadOptions(
        image_size=image_size, label_map=dict(label_map) if label_map else None, ferplus=ferplus_path,
        ferplus_sha256=hash_file(ferplus_path) if ferplus_path else "", soft_labels=soft_labels,
    )
    # The Kaggle download gets FER+ votes through the map shipped with emolens: the faces are
    # decoded (and cached) as for a plain load, then relabelled.
    kaggle_ferplus = ferplus_path is not None and reader.format in KAGGLE_FORMATS
    read_options = replace(options, ferplus=None, ferplus_sha256="", soft_labels=False) if kaggle_ferplus else options
    reader.check_options(read_options)

    source_sha256 = reader.fingerprint()
    raw = _read_cached(reader, source_sha256, read_options, cache=cache, progress=progress)
    if kaggle_ferplus:
        from emolens.data.ferplus_map import attach_ferplus

        raw = attach_ferplus(raw, read_ferplus(ferplus_path), soft=soft_labels, label_file=ferplus_path.name, fer2013_share=fer2013_share)

    if len(raw.images) == 0:
        detail = " | ".join(raw.skipped[:3]) or "the source holds no items"
        raise DataError(f"{reader.path}: nothing usable was found ({len(raw.skipped)} items skipped: {detail}); expected a {reader.description}")
    if raw.skipped:
        warnings.warn(_summarise(reader.path, raw, len(raw.images)), DataWarning, stacklevel=2)

    split = assign_splits(raw.labels, raw.split, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    source = str(reader.path) if ferplus_path is None else f"{reader.path} (labels: {ferplus_path})"
    return FaceDataset(
        images=raw.images, labels=raw.labels, split=split, names=raw.names, soft_labels=raw.soft_labels,
        classes=EMOTIONS, source=source, source_sha256=source_sha256, skipped=list(raw.skipped),
    )
