"""Class-folder trees on disk: the extracted Kaggle FER-2013 download (`train/`, `test/`) and
any folder-per-class dataset (CK+, JAFFE, RAF-DB exports, a user's photos), with or without
train/val/test folders."""

from __future__ import annotations

import os
from pathlib import Path

from emolens.data.cache import hash_tree
from emolens.data.readers.base import RawBuilder, RawData, Reader, ReadOptions, is_ignored
from emolens.data.readers.tree import TreePlan, decode_tree, plan_tree
from emolens.errors import DataError


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    files, dirs = [], []
    for here, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not is_ignored(d))
        base = Path(here)
        dirs += [base / d for d in subdirs]
        files += [base / n for n in sorted(names) if not is_ignored(n)]
    return files, dirs


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
        return hash_tree(self.path, self._files)

    def _plan(self, options: ReadOptions) -> TreePlan:
        rel = [(str(f), f.relative_to(self.path).parts) for f in self._files]
        plan = plan_tree(rel, [d.relative_to(self.path).parts for d in self._dirs], options.label_map)
        if not plan.items and not plan.class_dirs:
            raise DataError(f"{self.path}: no class folders with images (found {len(self._files)} files); expected a {self.description}")
        return plan

    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        self.check_options(options)
        plan = self._plan(options)
        out = RawBuilder(options.image_size, layout=f"folder, {plan.layout}")
        return decode_tree(
            plan, lambda key: Path(key).read_bytes(), out, options.preprocess, desc=f"decoding {self.path.name}", progress=progress,
            read_errors=(OSError,), read_error=lambda exc: f"cannot be read ({getattr(exc, 'strerror', None) or exc})",
        )
