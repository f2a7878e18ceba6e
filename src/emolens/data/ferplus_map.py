"""FER+ labels for the Kaggle FER-2013 download, which has no `fer2013.csv` to align them with.

Every Kaggle JPEG is a compressed copy of one FER+ image of the same split (nearest pixels:
RMSE about 1.75 grey levels; the next-nearest image is about 40 away). `build_kaggle_map`
finds that image once by nearest pixels; the result (Kaggle file name -> FER+ image name, the
`Image name` column of `fer2013new.csv`; names only, no pixels or labels) ships inside the package as
`ferplus_kaggle.csv.gz`, so `load_dataset(archive.zip, ferplus="fer2013new.csv")` needs nothing
else. Rebuild it with `emolens data ferplus-map KAGGLE FERPLUS_IMAGES`.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np

from emolens.data.dataset import SPLITS
from emolens.data.readers.base import FER_PREFIXES, RawData, decode_face
from emolens.data.readers.ferplus import FerPlusRow, ferplus_label
from emolens.data.readers.ferplus_images import FERPLUS_SPLIT_DIRS
from emolens.errors import DataError
from emolens.preprocessing import PreprocessConfig

MAP_FILE = "ferplus_kaggle.csv.gz"
MAP_HEADER = ("kaggle_name", "ferplus_name")
# A JPEG copy sits within a few grey levels; anything past this is another face (or none).
MAX_MATCH_RMSE = 8.0
_FER_NAME = re.compile(r"^fer\d{7}\.png$")
_CHUNK_ROWS = 1024  # Kaggle images per distance block: (1024, ~28.6k) float32 = 117 MB


@dataclass
class MapResult:
    names: dict[str, str]  # Kaggle name -> FER+ image name (fer0000000.png)
    rmse: np.ndarray  # (matched,) distance to the match, grey levels
    second_rmse: np.ndarray  # (matched,) distance to the next-nearest distinct image
    unmatched: list[str]  # Kaggle names with no FER+ image within MAX_MATCH_RMSE


def read_ferplus_images(path: Path, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every FER+ PNG (whatever its votes) as (faces (N, S, S), image names (N,), split (N,))."""
    faces, names, splits = [], [], []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            m = _FER_NAME.match(parts[-1]) if len(parts) >= 2 else None
            if m is None or parts[-2] not in FERPLUS_SPLIT_DIRS:
                continue
            faces.append(decode_face(zf.read(info), info.filename, cfg))
            names.append(parts[-1])
            splits.append(SPLITS.index(FERPLUS_SPLIT_DIRS[parts[-2]]))
    if not faces:
        raise DataError(f"{path}: no FER+ images (FER2013Train/fer0000000.png ...) found")
    return np.stack(faces), np.asarray(names), np.asarray(splits)


def _pixel_groups(faces: np.ndarray) -> np.ndarray:
    """(N,) id per face, equal exactly for faces with identical pixels."""
    _, group = np.unique(faces.reshape(len(faces), -1), axis=0, return_inverse=True)
    return group.reshape(-1)


def _nearest_two(query: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query row: index of the nearest pool row, its squared distance, and the squared
    distance of the nearest pool row whose pixels differ from it (exact duplicates excluded)."""
    q, p = query.reshape(len(query), -1).astype(np.float32), pool.reshape(len(pool), -1).astype(np.float32)
    p_sq = (p * p).sum(1)
    group = _pixel_groups(pool)
    best = np.empty(len(q), np.int64)
    d1 = np.empty(len(q), np.float32)
    d2 = np.empty(len(q), np.float32)
    for start in range(0, len(q), _CHUNK_ROWS):
        block = q[start : start + _CHUNK_ROWS]
        rows = slice(start, start + len(block))
        d = (block * block).sum(1, keepdims=True) + p_sq[None, :] - 2.0 * block @ p.T  # (b, P)
        np.maximum(d, 0, out=d)
        best[rows] = d.argmin(1)
        d1[rows] = d[np.arange(len(block)), best[rows]]
        d[group[None, :] == group[best[rows]][:, None]] = np.inf  # the runner-up must be another face
        d2[rows] = d.min(1)
    return best, d1, d2


def build_kaggle_map(kaggle: RawData, ferplus_images: Path) -> MapResult:
    """Match every Kaggle face to its FER+ image in the same split, by nearest pixels."""
    cfg = PreprocessConfig(image_size=kaggle.images.shape[1], input_size=kaggle.images.shape[1])
    fp_faces, fp_names, fp_split = read_ferplus_images(ferplus_images, cfg)
    names: dict[str, str] = {}
    rmse, second, unmatched = [], [], []
    n_pixels = cfg.image_size * cfg.image_size
    for s in range(len(SPLITS)):
        k_idx, p_idx = np.flatnonzero(kaggle.split == s), np.flatnonzero(fp_split == s)
        if not len(k_idx) or not len(p_idx):
            unmatched += [str(kaggle.names[i]) for i in k_idx]
            continue
        best, d1, d2 = _nearest_two(kaggle.images[k_idx], fp_faces[p_idx])
        for j, i in enumerate(k_idx):
            r1 = float(np.sqrt(d1[j] / n_pixels))
            if r1 > MAX_MATCH_RMSE:
                unmatched.append(str(kaggle.names[i]))
                continue
            names[str(kaggle.names[i])] = str(fp_names[p_idx[best[j]]])
            rmse.append(r1)
            second.append(float(np.sqrt(d2[j] / n_pixels)))
    return MapResult(names, np.asarray(rmse), np.asarray(second), unmatched)


def write_map(names: dict[str, str], path: Path) -> Path:
    """Write the map as gzip CSV, sorted by name, byte-identical for the same content."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MAP_HEADER)
    for name in sorted(names):
        w.writerow((name, names[name]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode())
    return path


def shipped_map_path() -> Path:
    return Path(str(resources.files("emolens.data") / MAP_FILE))


def read_map(path: Path | None = None) -> dict[str, str]:
    """Kaggle name -> FER+ image name, from `path` or the map shipped with emolens."""
    path = path or shipped_map_path()
    try:
        with gzip.open(path, "rt", newline="") as f:
            reader = csv.reader(f)
            if tuple(next(reader, ())) != MAP_HEADER:
                raise DataError(f"{path}: not an emolens FER+ map (expected header {','.join(MAP_HEADER)})")
            return {kaggle: ferplus for kaggle, ferplus in reader}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the FER+ map ({exc})") from None


def _lookup(names: np.ndarray, mapping: dict[str, str]) -> list[str | None]:
    """FER+ name per Kaggle name: by the path below the wrappers, else by the unique file name."""
    by_base: dict[str, str | None] = {}
    for kaggle, ferplus in mapping.items():
        base = kaggle.rsplit("/", 1)[-1]
        by_base[base] = None if base in by_base else ferplus  # a file name seen twice is ambiguous
    return [mapping.get(str(n), by_base.get(str(n).rsplit("/", 1)[-1])) for n in names]



def attach_ferplus(
    raw: RawData, ferplus: list[FerPlusRow], *, soft: bool, label_file: str, mapping: dict[str, str] | None = None, fer2013_share: float = 0.0,
) -> RawData:
    """Relabel a Kaggle FER-2013 read with FER+ votes; faces FER+ drops are skipped and reported.

    Labels become the FER+ majority. Soft labels are the vote shares, mixed with `fer2013_share`
    of the face's own FER-2013 label (one-hot): both annotations of the same face in one target.
    """
    mapping = read_map() if mapping is None else mapping
    by_name = {fp.name: (row, fp) for row, fp in enumerate(ferplus) if fp.name}
    keep, labels, dists, skipped = [], [], [], list(raw.skipped)
    found = _lookup(raw.names, mapping)
    if len(found) and all(f is None for f in found):
        raise DataError(
            f"none of the {len(found)} images (e.g. {raw.names[0]}) is a file of the Kaggle FER-2013 download, so {label_file} "
            "cannot label them; FER+ votes apply to that download, to fer2013.csv, or to the FER+ image folders"
        )
    for i, fer_name in enumerate(found):
        name = str(raw.names[i])
        if fer_name is None or fer_name not in by_name:
            skipped.append(f"{name}: no FER+ counterpart (FER+ judged it not a face, or it is not a Kaggle FER-2013 file); skipped")
            continue
        row, fp = by_name[fer_name]
        if fp.votes is None:
            skipped.append(f"{fp.error}; skipped")
            continue
        usage_split = FER_PREFIXES.get(fp.usage.lower())
        if usage_split is None:
            skipped.append(f"{label_file} row {row}: Usage {fp.usage!r} is not Training, PublicTest or PrivateTest; skipped")
            continue
        if SPLITS.index(usage_split) != raw.split[i]:
            raise DataError(f"{label_file} row {row} says Usage {fp.usage!r} but {name} is in another split: not Microsoft's fer2013new.csv")
        label, dist, reason = ferplus_label(fp.votes, soft=soft)
        if label is None:
            skipped.append(f"{name} ({label_file} {fer_name}): {reason}; skipped")
            continue
        keep.append(i)
        labels.append(label)
        if dist is not None and fer2013_share:
            dist = (1.0 - fer2013_share) * dist + fer2013_share * np.eye(len(dist), dtype=np.float32)[raw.labels[i]]
        dists.append(dist)
    idx = np.asarray(keep, np.int64)
    return replace(
        raw, images=raw.images[idx], labels=np.asarray(labels, np.int64), split=raw.split[idx], names=raw.names[idx],
        soft_labels=np.stack(dists).astype(np.float32) if soft and dists else None, skipped=skipped,
        layout=f"{raw.layout} + FER+ votes ({label_file})",
    )
