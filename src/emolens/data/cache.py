"""The decoded-dataset cache: each source is decoded once, then loaded from a plain `.npz`.

The key is a hash of the source's content (not its path or mtime), the reader options and
`FORMAT_VERSION`, so an edited source, a different `image_size` or a new reader version never
hits a stale entry. Files are written atomically and read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # readers import the hashing helpers below
    from emolens.data.readers.base import RawData

FORMAT_VERSION = 1  # bump when a reader's output changes for the same source
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """`$EMOLENS_CACHE_DIR`, else `~/.cache/emolens`."""
    env = os.environ.get("EMOLENS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emolens"


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: Path, files: list[Path]) -> str:
    """sha256 over (relative path, size, bytes) of every file, in sorted path order, so that a
    renamed, added, removed or edited file changes the hash."""
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(8, "little") + rel + len(data).to_bytes(8, "little"))
        h.update(data)
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
        return RawData.from_meta(arrays, str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        warnings.warn(f"ignoring unreadable dataset cache {path} ({exc.__class__.__name__}: {exc}); decoding the source again", stacklevel=3)
        return None


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
