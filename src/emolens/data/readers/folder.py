"""Class-folder trees on disk: the extracted Kaggle FER-2013 download (`train/`, `test/`) and
any folder-per-class dataset (CK+, JAFFE, RAF-DB exports, a user's photos), with or without
train/val/test folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from emolens.data.cache import hash_tree
from emolens.data.readers import base
from emolens.data.readers.base import RawBuilder, RawData, Reader, ReadOptions, SkipItem, is_ignored
from emolens.data.readers.tree import TreePlan, decode_tree, is_image_name, plan_tree
from emolens.errors import DataError
from emolens.preprocessing import printable_path as printable


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    files, dirs = [], []
    for here, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not is_ignored(d))
        base_dir = Path(here)
        dirs += [base_dir / d for d in subdirs]
        files += [base_dir / n for n in sorted(names) if not is_ignored(n)]
    return files, dirs


def file_problem(path: Path, rel: str) -> str:
    """Why the file at `path` cannot be a dataset image ("" when it may be one); never opens it."""
    if printable(rel) != rel:
        return "file name is not valid UTF-8; skipped (rename it, e.g. with convmv)"
    try:
        mode = os.stat(path).st_mode  # follows symlinks: a link to a good image is a good image
    except OSError as exc:
        if os.path.islink(path):
            return f"dangling symbolic link (to {printable(os.readlink(path))}); skipped"
        return f"cannot be read ({exc.strerror or exc}); skipped"
    if not stat.S_ISREG(mode):
        return "not a regular file (a named pipe, socket or device); skipped"
    return ""


def read_image_file(key: str) -> bytes:
    """The bytes of one image file, refusing what is not a regular file or is too large to be an image."""
    limit = base.MAX_IMAGE_BYTES
    fd = os.open(key, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in after planning must not block
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SkipItem("not a regular file (a named pipe, socket or device)")
        if st.st_size > limit:
            raise SkipItem(f"{st.st_size} bytes, more than the {limit}-byte limit for one image file")
        data = f.read(limit + 1)  # bounded even if the file grows after the fstat
    if len(data) > limit:
        raise SkipItem(f"more than the {limit}-byte limit for one image file")
    return data


class FolderReader(Reader):
    format = "folder"
    description = "folder of class folders (<class>/*.jpg, or train|val|test/<class>/*.jpg as in the extracted Kaggle FER-2013)"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._files, self._dirs = _walk(path)

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir() and any(p.is_dir() and not is_ignored(p.name) for p in path.iterdir())

    def fingerprint(self) -> str:
        # Only image files are ever decoded, so only their bytes matter; the rest count by name.
        other = [f for f in self._files if not is_image_name(f.name)]
        return hash_tree(self.path, [f for f in self._files if is_image_name(f.name)], names_only=other)

    def _plan(self, options: ReadOptions) -> TreePlan:
        rel = [(str(f), tuple(printable(p) for p in f.relative_to(self.path).parts)) for f in self._files]
        dirs = [tuple(printable(p) for p in d.relative_to(self.path).parts) for d in self._dirs]
        plan = plan_tree(rel, dirs, options.label_map)
        if not plan.items and not plan.class_dirs:
            raise DataError(f"{self.path}: no class folders with images (found {len(self._files)} files); expected a {self.description}")
        # Links, pipes and undecodable names in class folders: reported here, never opened.
        keep = []
        for item in plan.items:
            path = Path(item.key)
            problem = file_problem(path, path.relative_to(self.path).as_posix())
            if problem:
                plan.messages.append(f"{item.name}: {problem}")
            else:
                keep.append(item)
        plan.items = keep
        return plan

    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        self.check_options(options)
        plan = self._plan(options)
        out = RawBuilder(options.image_size, layout=f"folder, {plan.layout}")
        return decode_tree(
            plan, read_image_file, out, options.preprocess, desc=f"decoding {self.path.name}", progress=progress,
            read_errors=(OSError,), read_error=lambda exc: f"cannot be read ({getattr(exc, 'strerror', None) or exc})",
        )
