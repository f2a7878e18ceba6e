"""One reader per source format, tried in order by `load_dataset`."""

from __future__ import annotations

from emolens.data.readers.base import RawData, Reader, ReadOptions
from emolens.data.readers.fer_csv import FerCsvReader
from emolens.data.readers.ferplus_images import FerPlusImagesReader
from emolens.data.readers.folder import FolderReader
from emolens.data.readers.zip_archive import ZipReader

# FER+ first: its layout is a zip or folder too, told apart by its label.csv files.
READERS: tuple[type[Reader], ...] = (FerPlusImagesReader, ZipReader, FerCsvReader, FolderReader)


def supported_layouts() -> str:
    return "\n".join(f"  - {r.description}" for r in READERS)


__all__ = ["READERS", "FerCsvReader", "FerPlusImagesReader", "FolderReader", "RawData", "ReadOptions", "Reader", "ZipReader", "supported_layouts"]
