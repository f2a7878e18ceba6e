"""The decoded-dataset cache: each source is decoded once, then loaded from a plain `.npz`.

The key is a hash of the source's content (not its path or mtime), the reader options and
`FORMAT_VERSION`, so an edited source, a different `image_size` or a new reader version never
hits a stale entry. Files are written atomically and read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
import warnings
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emolens.paths import cache_dir  # the one cache-folder rule

if TYPE_CHECKING:  # readers import the hashing helpers below
    from emolens.data.readers.base import RawData

FORMAT_VERSION = 2  # bump when a reader's output changes for the same source (2: non-image files are not decoded)
_STALE_TMP_S = 3600  # a temp file this old belongs to a killed writer, not one still running
_CHUNK = 1 << 20


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


_NOT_REGULAR = (1 << 64) - 1  # size field of an entry hashed by name only; no real file is that long


def _file_kind(path: Path) -> str:
    """What `path` is when it is not a regular file (stat follows symlinks), else ""."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "dangling symbolic link" if os.path.islink(path) else "unreadable"
    if stat.S_ISREG(mode):
        return ""
    return "folder" if stat.S_ISDIR(mode) else "named pipe" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"


def _hash_content(h: Any, rel: bytes, path: Path) -> None:
    # O_NONBLOCK: a FIFO swapped in after the stat must not block open(); fstat then rejects it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        h.update(len(rel).to_bytes(8, "little") + rel + st.st_size.to_bytes(8, "little"))
        while chunk := f.read(_CHUNK):  # streamed: a large file costs one chunk of memory
            h.update(chunk)


def hash_tree(root: Path, files: list[Path], names_only: Collection[Path] = ()) -> str:
    """sha256 over (relative path, size, bytes) of every regular file, in sorted path order, so
    that a renamed, added, removed or edited file changes the hash.

    Files in `names_only`, and anything that is not a regular file (a dangling link, a pipe, a
    link to a device), count by name and kind only: they are never opened, so a video beside the
    class folders costs nothing and a FIFO cannot hang the hash.
    """
    h = hashlib.sha256()
    by_name = set(names_only)
    # fsencode: a file name that is not UTF-8 is kept as the bytes it is on disk.
    for path in sorted([*files, *by_name], key=lambda p: os.fsencode(p.relative_to(root).as_posix())):
        rel = os.fsencode(path.relative_to(root).as_posix())
        kind = "name only" if path in by_name else _file_kind(path)
        if not kind:
            try:
                _hash_content(h, rel, path)
                continue
            except OSError:
                kind = "unreadable"
        h.update(len(rel).to_bytes(8, "little") + rel + _NOT_REGULAR.to_bytes(8, "little") + kind.encode())
    return h.hexdigest()


def cache_key(fmt: str, source_sha256: str, options: dict[str, Any]) -> str:
    blob = json.dumps({"format_version": FORMAT_VERSION, "reader": fmt, "source": source_sha256, "options": options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cache_path(key: str) -> Path:
    return cache_dir() / "datasets" / f"{key}.npz"


def load_cached(key: str) -> RawData | None:
    """The cached rows for `key`, or None (missing, or unreadable: then it is rebuilt)."""
    from emolens.data.readers.base import RawData

    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        raw = RawData.from_meta(arrays, str(arrays.pop("meta")))
        problem = cache_problem(raw)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        problem = f"{exc.__class__.__name__}: {exc}"
    if problem:
        warnings.warn(f"ignoring unreadable dataset cache {path} ({problem}); decoding the source again", stacklevel=3)
        return None
    return raw


def cache_problem(raw: RawData) -> str:
    """What is wrong with a cache entry's arrays ("" when nothing): the entry is a file anyone
    with access to the cache folder can edit, so it is checked like any other input."""
    from emolens.data.dataset import SPLITS
    from emolens.data.readers.base import UNASSIGNED
    from emolens.labels import EMOTIONS

    images, n = raw.images, len(raw.images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2]:
        return f"images are {images.dtype} {images.shape}, expected uint8 (N, S, S)"
    for name, arr in (("labels", raw.labels), ("split", raw.split), ("names", raw.names)):
        if arr.shape != (n,):
            return f"{name} has shape {arr.shape}, expected ({n},) like the images"
    if raw.labels.dtype.kind not in "iu" or raw.split.dtype.kind not in "iu":
        return f"labels and split must be integers, got {raw.labels.dtype} and {raw.split.dtype}"
    if n and (raw.labels.min() < 0 or raw.labels.max() >= len(EMOTIONS)):
        return f"labels outside 0..{len(EMOTIONS) - 1} (found {raw.labels.min()}..{raw.labels.max()})"
    if n and (raw.split.min() < UNASSIGNED or raw.split.max() >= len(SPLITS)):
        return f"split outside {UNASSIGNED}..{len(SPLITS) - 1} (found {raw.split.min()}..{raw.split.max()})"
    soft = raw.soft_labels
    if soft is not None:
        if soft.shape != (n, len(EMOTIONS)) or soft.dtype.kind != "f":
            return f"soft_labels are {soft.dtype} {soft.shape}, expected float ({n}, {len(EMOTIONS)})"
        if not np.isfinite(soft).all() or soft.min(initial=0) < 0 or soft.max(initial=0) > 1:
            return "soft_labels hold values outside [0, 1] or not finite"
    return ""


def _remove_stale_tmp(folder: Path) -> None:
    """Delete temp files left by writers that were killed (SIGKILL, power loss: no `finally` ran).
    Young ones are kept: another process may be writing them now."""
    cutoff = time.time() - _STALE_TMP_S
    for tmp in folder.glob(".*.npz.tmp"):
        try:
            if tmp.lstat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:  # gone already, or not ours to delete
            pass


def save_cached(key: str, raw: RawData) -> Path | None:
    """Write atomically (temp file, then rename) so a crash never leaves a half-written entry.
    A read-only cache folder only costs speed, so it warns instead of failing."""
    path = cache_path(key)
    arrays: dict[str, np.ndarray] = {
        "images": raw.images, "labels": raw.labels, "split": raw.split, "names": raw.names,
        "skipped": np.asarray(raw.skipped, dtype=str), "meta": np.asarray(json.dumps(raw.meta())),
    }
    if raw.soft_labels is not None:
        arrays["soft_labels"] = raw.soft_labels
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npz.tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                # Uncompressed: uint8 faces barely compress and loading stays a memcpy.
                np.savez(f, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        warnings.warn(f"could not write the dataset cache {path} ({exc}); set EMOLENS_CACHE_DIR to a writable folder", stacklevel=3)
        return None
    return path
