"""Class-folder trees inside a zip, read member by member without unpacking: the Kaggle
FER-2013 download (`train/<class>/Training_*.jpg`, `test/<class>/{PublicTest,PrivateTest}_*.jpg`)
and any zipped folder-per-class dataset."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from emolens.data.cache import hash_file
from emolens.data.readers.base import RawBuilder, RawData, Reader, ReadOptions, decode_face
from emolens.data.readers.tree import TreePlan, plan_tree
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
        cfg = options.preprocess
        try:
            zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{self.path}: not a readable zip file ({exc})") from None
        with zf:
            plan = self._plan(zf, options)
            out = RawBuilder(options.image_size, layout=f"zip, {plan.layout}")
            for message in plan.messages:
                out.skip(message)
            for item in tqdm(plan.items, desc=f"decoding {self.path.name}", unit="img", disable=not progress, mininterval=0.5):
                if item.label is None:
                    out.ignore_class(item.class_name, item.name)
                    continue
                try:
                    data = zf.read(item.key)
                    face = decode_face(data, item.name, cfg)
                except DataError as exc:
                    out.skip(f"{exc}; skipped")
                    continue
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                    # Damaged member (CRC error, truncated archive, unsupported compression).
                    out.skip(f"{item.name}: cannot be read from the zip ({exc}); skipped")
                    continue
                out.add(face, item.label, item.split, item.name)
        return out.build()
