"""The FER+ image folders that Microsoft's instructions produce, zipped or on disk:
`FER2013Train/`, `FER2013Valid/`, `FER2013Test/`, each holding 48x48 PNGs and a `label.csv`
with ten crowd votes per image (see `readers.ferplus` for the label rules).

Splits follow the folders: Train -> train, Valid -> val, Test -> test, as in the literature.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from emolens.data.cache import hash_file, hash_tree
from emolens.data.dataset import SPLITS
from emolens.data.readers.base import RawBuilder, RawData, Reader, ReadOptions, decode_face
from emolens.data.readers.ferplus import ferplus_label, parse_label_csv
from emolens.errors import ConfigError, DataError

FERPLUS_SPLIT_DIRS: dict[str, str] = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
LABEL_FILE = "label.csv"
_MAX_MEMBER_BYTES = 16 << 20  # a 48x48 PNG is ~2 KB and label.csv ~2 MB; anything larger is not FER+


def _split_dirs(names: list[str]) -> dict[str, str]:
    """Split folder (as found, with any wrapper folders in front) -> split, from the label files."""
    found: dict[str, str] = {}
    for name in names:
        parts = PurePosixPath(name).parts
        if len(parts) >= 2 and parts[-1] == LABEL_FILE and parts[-2] in FERPLUS_SPLIT_DIRS:
            found["/".join(parts[:-1])] = FERPLUS_SPLIT_DIRS[parts[-2]]
    return found


def _zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return [i.filename for i in zf.infolist() if not i.is_dir()]


def _folder_names(path: Path) -> list[str]:
    # Only the label files decide the layout; images are looked up by the names they list.
    return [p.relative_to(path).as_posix() for d in FERPLUS_SPLIT_DIRS for p in path.glob(f"**/{d}/{LABEL_FILE}")]


class FerPlusImagesReader(Reader):
    format = "ferplus-images"
    description = "FER+ image folders (FER2013Train/, FER2013Valid/, FER2013Test/ with label.csv), zipped or extracted"
    has_votes = True  # label.csv beside the images

    @classmethod
    def detect(cls, path: Path) -> bool:
        try:
            if path.is_file() and zipfile.is_zipfile(path):
                return bool(_split_dirs(_zip_names(path)))
            return path.is_dir() and bool(_split_dirs(_folder_names(path)))
        except (OSError, zipfile.BadZipFile):
            return False

    def fingerprint(self) -> str:
        if self.path.is_file():
            return hash_file(self.path)
        split_dirs = _split_dirs(_folder_names(self.path))
        files = [self.path / d / name for d in split_dirs for name in (LABEL_FILE, *self._listed(d))]
        return hash_tree(self.path, [f for f in files if f.is_file()])

    def _listed(self, split_dir: str) -> list[str]:
        with self._open() as read:
            return [r.name for r in parse_label_csv(read(f"{split_dir}/{LABEL_FILE}"), f"{split_dir}/{LABEL_FILE}")]

    def check_options(self, options: ReadOptions) -> None:
        if options.ferplus is not None:
            raise ConfigError(
                f"{self.path}: this FER+ layout carries its votes in label.csv; do not pass ferplus= (fer2013new.csv) as well"
            )
        if options.soft_labels and options.label_map:
            raise ConfigError("label_map cannot be combined with soft_labels=True: FER+ vote distributions are kept as voted")

    @contextmanager
    def _open(self) -> Iterator[Callable[[str], bytes]]:
        """A function reading one file of the layout by its path inside it."""
        if self.path.is_dir():
            yield lambda name: _read_bounded_file(self.path / name)
            return
        try:
            zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{self.path}: not a readable zip file ({exc})") from None
        with zf:
            yield lambda name: _read_bounded_member(zf, name)

    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        self.check_options(options)
        names = _zip_names(self.path) if self.path.is_file() else _folder_names(self.path)
        out = RawBuilder(options.image_size, layout=f"FER+ images ({'zip' if self.path.is_file() else 'folder'})")
        with self._open() as read:
            for split_dir, split in sorted(_split_dirs(names).items()):
                self._read_split(read, split_dir, SPLITS.index(split), options, out, progress)
        return out.build()

    def _read_split(
        self, read: Callable[[str], bytes], split_dir: str, split: int, options: ReadOptions, out: RawBuilder, progress: bool
    ) -> None:
        label_path = f"{split_dir}/{LABEL_FILE}"
        try:
            rows = parse_label_csv(read(label_path), label_path)
        except (OSError, KeyError, zipfile.BadZipFile, EOFError, DataError) as exc:
            out.skip(f"{label_path}: cannot be read ({exc}); its split is skipped")
            return
        cfg = options.preprocess
        for row in tqdm(rows, desc=f"decoding {split_dir}", unit="img", disable=not progress, mininterval=0.5):
            name = f"{split_dir}/{row.name}"
            if row.votes is None:
                out.skip(f"{row.error}; skipped")
                continue
            label, soft, reason = ferplus_label(row.votes, soft=options.soft_labels)
            if label is None:
                out.skip(f"{name}: {reason}; skipped")
                continue
            try:
                face = decode_face(read(name), name, cfg)
            except DataError as exc:
                out.skip(f"{exc}; skipped")
                continue
            except (OSError, KeyError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
                out.skip(f"{name}: listed in {label_path} but cannot be read ({exc}); skipped")
                continue
            out.add(face, label, split, name, soft)


def _read_bounded_file(path: Path) -> bytes:
    if not path.is_file():
        raise OSError(f"not a regular file: {path}")
    size = path.stat().st_size
    if size > _MAX_MEMBER_BYTES:
        raise DataError(f"{path}: {size} bytes, more than the {_MAX_MEMBER_BYTES} a FER+ file can hold")
    return path.read_bytes()


def _read_bounded_member(zf: zipfile.ZipFile, name: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > _MAX_MEMBER_BYTES:
        raise DataError(f"{name}: {info.file_size} bytes uncompressed, more than the {_MAX_MEMBER_BYTES} a FER+ file can hold")
    return zf.read(info)
