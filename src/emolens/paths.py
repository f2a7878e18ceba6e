"""Output names that never replace what is already on disk: NAME, else NAME-2, NAME-3, ...

Every writer in emolens picks its file or folder names here (prediction images and tables,
videos, snapshots, evaluation reports, baseline and study folders, training runs), so one rule
holds everywhere: an existing file is never written over unless the user asked for it, and the
replacement name is the first free `NAME-k`, k = 2, 3, ...

Example::

    free_dir("runs/eval")                          # runs/eval, or runs/eval-2 when that holds files
    free_stem(Path("out"), "face", [".jpg"])       # "face", or "face-2" when out/face.jpg exists

Caches (decoded datasets, exported models) are not outputs: they live in `cache_dir()`, whose
entries are named by content hashes, so replacing one never replaces anything a user wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import count
from pathlib import Path

from emolens.errors import DataError


def numbered(name: str) -> Iterator[str]:
    """`name`, `name-2`, `name-3`, ...: the candidates, in the order they are tried."""
    yield name
    for k in count(2):
        yield f"{name}-{k}"


def free_stem(folder: Path, stem: str, suffixes: list[str], *, overwrite: bool = False, taken: set[Path] | None = None) -> str:
    """The first of `numbered(stem)` for which no `folder/stem+suffix` exists.

    `taken` holds paths this run already chose, so two inputs named alike never collide even
    with overwrite=True.
    """
    taken = taken if taken is not None else set()
    for cand in numbered(stem):
        paths = [folder / f"{cand}{s}" for s in suffixes]
        if not any(p in taken for p in paths) and (overwrite or not any(p.exists() for p in paths)):
            taken.update(paths)
            return cand
    raise AssertionError("unreachable: numbered() never ends")


def free_dir(base: str | Path, holds: Iterable[str] | None = None) -> Path:
    """The first of `base`, `base-2`, `base-3`, ... that is free, created.

    Free: not there yet, or a folder holding none of the names in `holds` (no entry at all when
    `holds` is None). A file at `base` is a DataError, since the caller asked for a folder there.
    Creation is atomic (mkdir without exist_ok), so two processes never share a new folder.
    """
    base = Path(base).expanduser()
    if base.exists() and not base.is_dir():
        raise DataError(f"{base}: is a file; expected a folder to write into")
    names = tuple(holds) if holds is not None else None
    for name in numbered(base.name):
        cand = base.with_name(name)
        if not cand.exists():
            try:
                cand.mkdir(parents=True)
            except FileExistsError:  # another process took it between the check and the mkdir
                continue
            return cand
        if cand.is_dir() and not (any(cand.iterdir()) if names is None else any((cand / n).exists() for n in names)):
            return cand
    raise AssertionError("unreachable: numbered() never ends")


CACHE_ENV = "EMOLENS_CACHE_DIR"


def cache_dir() -> Path:
    """Where emolens keeps what it can rebuild: `$EMOLENS_CACHE_DIR`, else `$XDG_CACHE_HOME/emolens`,
    else `~/.cache/emolens`. A relative XDG_CACHE_HOME is ignored, as the XDG spec says."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "emolens"


def write_cache_entry(entry: Path, data: bytes) -> None:
    """Write `data` to `entry` in the cache folder atomically: a temporary file of its own (two
    processes may fill the same entry at once), then renamed, so a reader never sees half a
    file. OSError when it cannot be written; no temporary file is left behind either way."""
    import contextlib
    import tempfile

    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, entry)  # a folder at `entry` raises here and is left alone
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
