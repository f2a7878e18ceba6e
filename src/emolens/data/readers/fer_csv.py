"""The original FER-2013 release, `fer2013.csv`: columns emotion, pixels, Usage; one 48x48 face
per row as space-separated gray values; `emotion` indexes `labels.FER2013_CSV_ORDER`; Usage is
Training / PublicTest / PrivateTest. Optionally relabelled by FER+ (`readers.ferplus`)."""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np
from tqdm.auto import tqdm

from emolens.data.cache import hash_file
from emolens.data.dataset import SPLITS
from emolens.data.readers.base import FER_PREFIXES, RawBuilder, RawData, Reader, ReadOptions, is_ignored
from emolens.data.readers.ferplus import FerPlusRow, ferplus_label, read_ferplus
from emolens.errors import ConfigError, DataError
from emolens.labels import EMOTIONS, FER2013_CSV_ORDER, canonical_label
from emolens.preprocessing import PreprocessConfig, prepare_face

CSV_COLUMNS = ("emotion", "pixels", "Usage")
# The CSV stores crops at FER-2013's native size, which is the default stored size.
NATIVE_SIZE = PreprocessConfig.image_size


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            # Bounded read: a large binary file without newlines must not be slurped here.
            return [h.strip() for h in next(csv.reader([f.readline(1 << 16)]), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _records(f: TextIO) -> Iterator[tuple[int, list[str] | str]]:
    """(line number, fields) of each non-blank line after the header, or (line number, why)
    for a line that cannot be split into fields.

    The csv module walks long fields a character at a time (~5 s for FER-2013's 290 MB);
    FER-2013 lines hold no quotes, so a plain split is exact and ten times faster. Lines that
    do carry quotes still go through the csv module.
    """
    for line_no, line in enumerate(f, start=2):
        if not line.strip():
            continue
        if not line.isascii() and (bad := _bad_utf8(line)):
            yield line_no, bad
        elif '"' in line:
            try:
                yield line_no, next(csv.reader([line]))
            except csv.Error as exc:  # a NUL byte, an over-long quoted field
                yield line_no, f"not a CSV line ({exc})"
        else:
            yield line_no, line.rstrip("\r\n").split(",")


def _bad_utf8(line: str) -> str:
    """Why a line read with errors="surrogateescape" is not UTF-8 ("" when it is)."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(line[exc.start]) - 0xDC00  # surrogateescape keeps byte b as U+DC00 + b
        return f"byte 0x{byte:02x} at column {exc.start + 1} is not UTF-8 text (save the file as UTF-8)"
    return ""


def _parse_pixels(text: str) -> np.ndarray | None:
    """Space-separated integers -> int64 array, or None when a token is not an integer.

    np.fromstring is the fastest parser here (a few times quicker than split + int); it warns
    (in future numpy: raises) when it meets a token that is not a number. Call it under
    `warnings.simplefilter("error", DeprecationWarning)` so that warning becomes an exception.
    """
    try:
        return np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        return None


class FerCsvReader(Reader):
    format = "fer2013-csv"
    description = "fer2013.csv (columns emotion,pixels,Usage; Usage Training/PublicTest/PrivateTest)"

    def __init__(self, path: Path) -> None:
        # A folder holding only fer2013.csv (and perhaps fer2013new.csv, READMEs) means the csv.
        super().__init__(path / "fer2013.csv" if path.is_dir() else path)

    @classmethod
    def detect(cls, path: Path) -> bool:
        if path.is_dir():
            no_subdirs = not any(p.is_dir() and not is_ignored(p.name) for p in path.iterdir())
            return no_subdirs and (path / "fer2013.csv").is_file()
        if not path.is_file():
            return False
        header = _header(path)
        if set(CSV_COLUMNS) <= set(header):
            return True
        if header[:2] == ["Usage", "Image name"]:
            raise ConfigError(
                f"{path} is the FER+ label file (fer2013new.csv), which holds votes but no pixels; "
                "load the original fer2013.csv and pass this file as ferplus="
            )
        return False

    def fingerprint(self) -> str:
        return hash_file(self.path)

    def check_options(self, options: ReadOptions) -> None:
        # FER+ is meant for this source; only a label_map that moves soft votes is ambiguous.
        if options.soft_labels and options.label_map:
            raise ConfigError("label_map cannot be combined with soft_labels=True: FER+ vote distributions are kept as voted")

    def read(self, options: ReadOptions, *, progress: bool = True) -> RawData:
        ferplus: list[FerPlusRow] | None = read_ferplus(options.ferplus) if options.ferplus else None
        out = RawBuilder(options.image_size, layout="fer2013.csv" + (" + FER+ votes" if ferplus else ""))
        n_rows = 0
        # surrogateescape: one row with a stray byte is skipped (see _records), not the whole file.
        with open(self.path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f, warnings.catch_warnings():
            header = self._checked_header(f)
            col = {c: header.index(c) for c in CSV_COLUMNS}
            rows = tqdm(_records(f), desc=f"decoding {self.path.name}", unit="row", disable=not progress, mininterval=0.5)
            warnings.simplefilter("error", DeprecationWarning)  # see _parse_pixels
            for i, (line_no, rec) in enumerate(rows):
                n_rows += 1
                row = _Row(i, f"{self.path.name} row {i} (line {line_no})", rec)
                self._add_row(out, row, header, col, ferplus, options)
        if ferplus is not None and len(ferplus) != n_rows:
            raise DataError(
                f"{options.ferplus} has {len(ferplus)} rows but {self.path} has {n_rows}: the files are not aligned; "
                "use the fer2013new.csv that belongs to this fer2013.csv"
            )
        return out.build()

    def _checked_header(self, f: TextIO) -> list[str]:
        """The csv's column names; an error naming the missing ones."""
        header = [h.strip() for h in next(csv.reader([f.readline()]), [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{self.path}: missing columns {missing}; found {header}, expected {','.join(CSV_COLUMNS)}")
        return header

    def _add_row(
        self,
        out: RawBuilder,
        row: _Row,
        header: list[str],
        col: dict[str, int],
        ferplus: list[FerPlusRow] | None,
        options: ReadOptions,
    ) -> None:
        """One row's face into `out`, or the reason it is skipped."""
        rec = row.fields
        if isinstance(rec, str):
            return out.skip(f"{row.where}: {rec}; skipped")
        if len(rec) != len(header):
            return out.skip(f"{row.where}: {len(rec)} fields, expected {len(header)} ({','.join(header)}); skipped")
        usage = rec[col["Usage"]].strip()
        split = FER_PREFIXES.get(usage.lower())
        if split is None:
            return out.skip(f"{row.where}: Usage {usage!r} is not Training, PublicTest or PrivateTest; skipped")
        emotion = rec[col["emotion"]].strip()
        # isascii: str.isdigit accepts '²', which int() rejects, and '٣', which it reads as 3.
        if not (emotion.isascii() and emotion.isdigit()) or int(emotion) >= len(FER2013_CSV_ORDER):
            return out.skip(
                f"{row.where}: unknown emotion label {emotion!r}; expected 0-{len(FER2013_CSV_ORDER) - 1} ({', '.join(FER2013_CSV_ORDER)}); skipped"
            )
        pixels, problem = _row_pixels(rec[col["pixels"]])
        if problem:
            return out.skip(f"{row.where}: {problem}; skipped")
        if ferplus is None:
            target = _csv_target(out, row, FER2013_CSV_ORDER[int(emotion)], options)
        else:
            target = self._ferplus_target(out, row, usage, ferplus, options)
        if target is not None:
            face = prepare_face(pixels.astype(np.uint8).reshape(NATIVE_SIZE, NATIVE_SIZE), options.preprocess)
            out.add(face, target[0], SPLITS.index(split), f"row {row.index}", target[1])

    def _ferplus_target(
        self, out: RawBuilder, row: _Row, usage: str, ferplus: list[FerPlusRow], options: ReadOptions
    ) -> tuple[int, np.ndarray | None] | None:
        """The row's FER+ label index and vote shares, or None when FER+ drops the face (recorded in `out`)."""
        name = options.ferplus.name
        if row.index >= len(ferplus):
            return out.skip(f"{row.where}: no matching row in {name} ({len(ferplus)} rows); skipped")
        fp = ferplus[row.index]
        if fp.votes is None:
            return out.skip(f"{fp.error}; skipped")
        if fp.usage != usage:
            raise DataError(
                f"{name} row {row.index} says Usage {fp.usage!r} but {row.where} says {usage!r}: the files are "
                "not aligned; use the fer2013new.csv that belongs to this fer2013.csv, unsorted and unfiltered"
            )
        label_idx, soft, reason = ferplus_label(fp.votes, soft=options.soft_labels)
        if label_idx is None:
            return out.skip(f"{name} row {row.index}: {reason}; skipped")
        # label_map applies to the FER+ label, as it does to the csv's own.
        mapped = canonical_label(EMOTIONS[label_idx], options.label_map)
        if mapped is None:
            return out.ignore_class(EMOTIONS[label_idx], row.where)
        return EMOTIONS.index(mapped), soft


class _Row(NamedTuple):
    index: int  # among the data rows, counting skipped ones: FER+'s rows align by it
    where: str  # "fer2013.csv row 12 (line 14)", for messages
    fields: list[str] | str  # the fields, or why the line could not be split


def _csv_target(out: RawBuilder, row: _Row, csv_name: str, options: ReadOptions) -> tuple[int, None] | None:
    """The csv's own label as an index into EMOTIONS, or None when label_map drops it (recorded in `out`)."""
    label = canonical_label(csv_name, options.label_map)
    if label is None:
        return out.ignore_class(csv_name, row.where)
    return EMOTIONS.index(label), None


def _row_pixels(text: str) -> tuple[np.ndarray | None, str | None]:
    """A row's 48x48 pixel values, or None and what is wrong with them."""
    n_pixels = NATIVE_SIZE * NATIVE_SIZE
    pixels = _parse_pixels(text)
    if pixels is None:
        return None, "pixels are not all integers"
    if pixels.size != n_pixels:
        side = math.isqrt(pixels.size)
        hint = f" ({side}x{side})" if side * side == pixels.size else ""
        return None, f"{pixels.size} pixel values{hint}, expected {n_pixels} ({NATIVE_SIZE}x{NATIVE_SIZE})"
    if pixels.min() < 0 or pixels.max() > 255:
        return None, f"pixel values outside 0-255 (found {pixels.min()}..{pixels.max()})"
    return pixels, None
