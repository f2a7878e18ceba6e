"""Class-folder trees inside a zip, read member by member without unpacking: the Kaggle
FER-2013 download (`train/<class>/Training_*.jpg`, `test/<class>/{PublicTest,PrivateTest}_*.jpg`)
and any zipped folder-per-class dataset.

Member sizes are checked before anything is inflated (a 2 MB zip can hold a 2 GiB member of
zeros), members are opened by their `ZipInfo`, not their name (two members may share one), and
names that are absolute or climb out with `..` are reported, never used.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from emolens.data.cache import hash_file
from emolens.data.readers import base
from emolens.data.readers.base import RawBuilder, RawData, Reader, ReadOptions, SkipItem, decode_face
from emolens.data.readers.tree import TreePlan, decode_tree, plan_tree
from emolens.errors import DataError
from emolens.preprocessing import PreprocessConfig

# Declared uncompressed bytes of all planned members together: FER-2013 is 60 MB, AffectNet's
# full release about 120 GB; past this the zip is a bomb or not a face dataset.
MAX_TOTAL_BYTES = 256 << 30
# Local file header and end-of-central-directory (an empty zip) signatures.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_READ_ERRORS = (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError)
_DRIVE = re.compile(r"^[A-Za-z]:")


def _looks_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in _ZIP_MAGIC


def unsafe_name(name: str) -> bool:
    """True for member names that would land outside an extraction folder: absolute, a drive, or `..`."""
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name)) or ".." in re.split(r"[/\\]", name)


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, refusing before inflating anything one larger than an image can be."""
    limit = base.MAX_IMAGE_BYTES
    if info.file_size > limit:
        raise SkipItem(
            f"member declares {info.file_size} bytes uncompressed ({info.compress_size} compressed), "
            f"more than the {limit}-byte limit for one image (a zip bomb?)"
        )
    with zf.open(info) as f:
        data = f.read(limit + 1)  # bounded even when the header lies about the size
    if len(data) > limit:
        raise SkipItem(f"member inflates past the {limit}-byte limit for one image")
    return data


class ZipReader(Reader):
    format = "zip"
    description = "zip of class folders (Kaggle FER-2013: train/<class>/*.jpg and test/<class>/*.jpg; or <split>/<class>/*, <class>/*)"

    @classmethod
    def detect(cls, path: Path) -> bool:
        # A truncated zip has no central directory, so is_zipfile says no; its suffix or first
        # bytes still say zip, and read() then reports it as damaged, not as an unknown layout.
        if not path.is_file():
            return False
        return path.suffix.lower() == ".zip" or _looks_like_zip(path) or zipfile.is_zipfile(path)

    def fingerprint(self) -> str:
        return hash_file(self.path)

    def _plan(self, zf: zipfile.ZipFile, options: ReadOptions) -> tuple[TreePlan, dict[str, list[zipfile.ZipInfo]]]:
        """The tree plan (keys are member names) and every member of each name, in archive order."""
        members: dict[str, list[zipfile.ZipInfo]] = {}
        unsafe = []
        for info in zf.infolist():
            if unsafe_name(info.filename):
                unsafe.append(f"{info.filename}: unsafe member name (absolute, or climbs out with '..'); skipped")
            elif not info.is_dir():
                members.setdefault(info.filename, []).append(info)
        dirs = {PurePosixPath(i.filename).parts for i in zf.infolist() if i.is_dir() and not unsafe_name(i.filename)}
        files = [(name, PurePosixPath(name).parts) for name in members]
        # Folders that only appear as prefixes of member names count as folders too.
        dirs |= {p[:i] for _, p in files for i in range(1, len(p))}
        plan = plan_tree(files, sorted(dirs), options.label_map)
        plan.messages[:0] = unsafe
        if not plan.items:
            names = [f for f, _ in files[:5]]
            raise DataError(
                f"{self.path}: no images in class folders (found {len(files)} files, e.g. {names}"
                + (f"; {len(unsafe)} unsafe names skipped" if unsafe else "") + f"); expected a {self.description}"
            )
        total = sum(i.file_size for item in plan.items for i in members[item.key])
        if total > MAX_TOTAL_BYTES:
            raise DataError(
                f"{self.path}: its images declare {total} bytes uncompressed in all, more than the {MAX_TOTAL_BYTES}-byte "
                "limit (a zip bomb?); unpack the images you need into a folder and load that"
            )
        return plan, members

    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        self.check_options(options)
        try:
            zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DataError(
                f"{self.path}: damaged zip file ({exc}); it may be truncated by an interrupted download: download it again"
            ) from None
        with zf:
            plan, members = self._plan(zf, options)
            out = RawBuilder(options.image_size, layout=f"zip, {plan.layout}")
            # A damaged member raises a CRC error, a truncated archive EOFError, an unsupported compression NotImplementedError.
            return decode_tree(
                plan, _member_source(zf, members, out, options.preprocess), out, options.preprocess,
                desc=f"decoding {self.path.name}", progress=progress,
                read_errors=_READ_ERRORS, read_error=lambda exc: f"cannot be read from the zip ({exc})",
            )


def _member_source(
    zf: zipfile.ZipFile, members: dict[str, list[zipfile.ZipInfo]], out: RawBuilder, cfg: PreprocessConfig
) -> Callable[[str], bytes]:
    """name -> bytes. Of several members sharing a name the first that decodes is used, so a
    broken later copy (zipfile.read would take the last) cannot hide a good one; the choice is reported."""

    def read(name: str) -> bytes:
        copies = members[name]
        if len(copies) == 1:
            return read_member(zf, copies[0])
        errors = []
        for k, info in enumerate(copies, start=1):
            try:
                data = read_member(zf, info)
                decode_face(data, name, cfg)  # decoded twice, for duplicates only
            except (DataError, SkipItem, *_READ_ERRORS) as exc:
                errors.append(f"copy {k}: {exc}")
                continue
            why = f" ({'; '.join(errors)})" if errors else ""
            out.skip(f"{name}: {len(copies)} members share this name; copy {k} is used, the other{'s' if len(copies) > 2 else ''} skipped{why}")
            return data
        raise SkipItem(f"{len(copies)} members share this name and none is a readable image ({'; '.join(errors)})")

    return read
