"""Class-folder trees inside a zip, read member by member without unpacking: the Kaggle
FER-2013 download (`train/<class>/Training_*.jpg`, `test/<class>/{PublicTest,PrivateTest}_*.jpg`)
and any zipped folder-per-class dataset."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from emolens.data.cache import hash_file
from emolens.data.readers.base import RawBuilder, RawData, Reader, ReadOptions
from emolens.data.readers.tree import TreePlan, decode_tree, plan_tree
from emolens.errors import DataError


class ZipReader(Reader):
    format = "zip"
    description = "zip of class folders (Kaggle FER-2013: train/<class>/*.jpg and test/<class>/*.jpg; or <split>/<class>/*, <class>/*)"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_file() and zipfile.is_zipfile(path)

    def fingerprint(self) -> str:
        return hash_file(self.path)

    def _plan(self, zf: zipfile.ZipFile, options: ReadOptions) -> TreePlan:
        files, dirs = [], []
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            (dirs if info.is_dir() else files).append((info.filename, parts))
        dirs = [p for _, p in dirs]
        # Folders that only appear as prefixes of member names count as folders too.
        dirs += [p[:i] for _, p in files for i in range(1, len(p))]
        plan = plan_tree(files, sorted(set(dirs)), options.label_map)
        if not plan.items:
            names = [f for f, _ in files[:5]]
            raise DataError(
                f"{self.path}: no images in class folders (found {len(files)} files, e.g. {names}); "
                f"expected a {self.description}"
            )
        return plan

    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        self.check_options(options)
        try:
            zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{self.path}: not a readable zip file ({exc})") from None
        with zf:
            plan = self._plan(zf, options)
            out = RawBuilder(options.image_size, layout=f"zip, {plan.layout}")
            # A damaged member raises a CRC error, a truncated archive EOFError, an unsupported compression NotImplementedError.
            return decode_tree(
                plan, zf.read, out, options.preprocess, desc=f"decoding {self.path.name}", progress=progress,
                read_errors=(zipfile.BadZipFile, OSError, EOFError, NotImplementedError), read_error=lambda exc: f"cannot be read from the zip ({exc})",
            )
