"""Output file names that never replace a user's files unless asked."""

from __future__ import annotations

from pathlib import Path


def free_stem(folder: Path, stem: str, suffixes: list[str], *, overwrite: bool = False, taken: set[Path] | None = None) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... : the first for which no `folder/stem+suffix` exists.

    `taken` holds paths this run already chose, so two inputs named alike never collide even
    with overwrite=True.
    """
    taken = taken if taken is not None else set()
    k = 1
    while True:
        cand = stem if k == 1 else f"{stem}-{k}"
        paths = [folder / f"{cand}{s}" for s in suffixes]
        if not any(p in taken for p in paths) and (overwrite or not any(p.exists() for p in paths)):
            taken.update(paths)
            return cand
        k += 1
