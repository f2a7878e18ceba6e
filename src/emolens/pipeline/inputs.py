"""What a list of paths names: files, the images of folders, glob patterns; and what names nothing.

One expansion for `EmotionRecognizer.predict` over many inputs and for `emolens predict`, so
both read the same files in the same order and report the same problems.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emolens.preprocessing import printable_path

# HEIC/HEIF (iPhone photos) need the `heif` extra; a folder's are still listed without it, so each
# is reported with the install line instead of being passed over in silence.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".heic", ".heif", ".avif")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputProblem:
    """An argument (or a file in a folder) that names no image to read."""

    name: str  # printable: the argument, or the file
    problem: str

    def __str__(self) -> str:
        return f"{self.name}: {self.problem}"


def is_many(arg: str | Path) -> bool:
    """Whether one path argument names several images: a folder, or a glob pattern."""
    text = str(arg)
    return Path(text).is_dir() or (any(c in text for c in _GLOB_CHARS) and not Path(text).exists())


def _not_regular(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "dangling symbolic link"
    return "not a regular file (a pipe, socket or device)"


def _expand_one(arg: str | Path, recursive: bool) -> Iterator[Path | InputProblem]:
    text = str(arg)
    path = Path(text)
    if any(c in text for c in _GLOB_CHARS) and not path.exists():
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            yield InputProblem(text, "the pattern matches no file")
        yield from found
    elif path.is_dir():
        named = sorted(p for p in path.glob("**/*" if recursive else "*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        # A dangling link, a pipe or a device named like an image: reported, never opened.
        for p in named:
            yield p if p.is_file() else InputProblem(printable_path(p), f"{_not_regular(p)}; skipped")
        if not any(p.is_file() for p in named):
            hint = "" if recursive else "; use --recursive (recursive=True) for subfolders"
            yield InputProblem(str(path), f"folder holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...){hint}")
    elif path.is_file():
        yield path
    elif path.exists() or path.is_symlink():
        yield InputProblem(printable_path(path), f"{_not_regular(path)}; skipped")
    else:
        yield InputProblem(printable_path(path), "no such file or folder")


def iter_inputs(paths: Iterable[Any], recursive: bool = False) -> Iterator[Any]:
    """The files `paths` name, in order, each once, with an InputProblem where one names nothing.

    paths: files, folders (the images in them; recursive: and in their subfolders) and glob
    patterns ('photos/*.jpg', 'shoots/**/*.png'). The same file named twice (a folder and a
    glob) comes once, and so does the same problem. Anything else in `paths` (an array, a PIL
    image, bytes) comes through as it is, in its place.
    """
    seen: set[Path | InputProblem] = set()
    for arg in paths:
        if not isinstance(arg, str | Path):
            yield arg
            continue
        for item in _expand_one(arg, recursive):
            key = item.resolve() if isinstance(item, Path) else item
            if key not in seen:
                seen.add(key)
                yield item


def expand_inputs(paths: Iterable[str | Path], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """iter_inputs split in two: the files, and one message per argument that names nothing."""
    items = list(iter_inputs(paths, recursive))
    return [i for i in items if isinstance(i, Path)], [str(i) for i in items if isinstance(i, InputProblem)]
