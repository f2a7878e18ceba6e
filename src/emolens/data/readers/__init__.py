"""One reader per source format, tried in order by `load_dataset`."""

from __future__ import annotations

from emolens.data.readers.base import RawData, Reader, ReadOptions
from emolens.data.readers.fer_csv import FerCsvReader
from emolens.data.readers.folder import FolderReader
from emolens.data.readers.zip_archive import ZipReader

READERS: tuple[type[Reader], ...] = (ZipReader, FerCsvReader, FolderReader)


def supported_layouts() -> str:
    return "\n".join(f"  - {r.description}" for r in READERS)


__all__ = ["READERS", "FerCsvReader", "FolderReader", "RawData", "ReadOptions", "Reader", "ZipReader", "supported_layouts"]
