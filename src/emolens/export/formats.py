"""What `emolens export` and `emolens export-dataset` can write: one definition of each choice.

The CLI options and the library functions both take these, so a format is named in one place.
A model format and a dataset layout are different things (nothing writes a dataset as ONNX),
so they are two enums, each named for what it lists.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from emolens.errors import ConfigError


class ModelFormat(StrEnum):
    """Model files `emolens export --format` writes (`emolens.export.export_model`)."""

    onnx = "onnx"  # onnxruntime; the `onnx` extra
    tflite = "tflite"  # LiteRT (TensorFlow Lite), for phones; the `tflite` extra

    @property
    def suffix(self) -> str:
        return f".{self.value}"


class DatasetFormat(StrEnum):
    """Dataset layouts `emolens export-dataset --format` writes (`emolens.export.export_dataset`)."""

    ultralytics_cls = "ultralytics-cls"  # OUT/{train,val,test}/<class>/*.png


_Format = TypeVar("_Format", ModelFormat, DatasetFormat)


def parse_format(kind: type[_Format], value: str) -> _Format:
    """`value` as a member of `kind`, or ConfigError listing the choices."""
    try:
        return kind(value)
    except ValueError:
        what = "model export format" if kind is ModelFormat else "dataset export format"
        raise ConfigError(f"unknown {what} {value!r}; expected one of {', '.join(kind)}") from None
