"""What an exported model file carries about itself, for every format alike.

An .onnx or .tflite file from `emolens export` holds two text entries beside its graph: the
model's full `ModelConfig` as JSON (labels in order, preprocessing, temperature, training
record) under "emolens_config", and how it was quantised under "emolens_quantization". ONNX
keeps them in its metadata_props, TFLite in its flatbuffer's named metadata buffers. A backend
reads them back with `config_from_metadata`, so the file needs nothing beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emolens.errors import ModelError

META_KEY = "emolens_config"
QUANT_KEY = "emolens_quantization"
NOT_QUANTIZED = "none"


def metadata_entries(config: Any, quantization: str) -> dict[str, str]:
    """The two entries, from a ModelConfig or its dict."""
    as_dict = config if isinstance(config, dict) else config.to_dict()
    return {META_KEY: json.dumps(as_dict, sort_keys=True), QUANT_KEY: quantization}


def config_from_metadata(meta: dict[str, str], label: str, format: str) -> Any:
    """The ModelConfig a file's metadata holds, fully checked; ModelError naming the file if absent."""
    from emolens.models.config import config_from_json

    if META_KEY not in meta:
        raise ModelError(f"{label}: {format} model carries no emolens config; export it with `emolens export --format {format.lower()}`")
    return config_from_json(meta[META_KEY], label)


def model_bytes(model: str | Path | bytes, format: str, source: str | None = None) -> tuple[str, bytes]:
    """(label for messages, bytes) of a model given as bytes or as a path; a path must be a
    regular file of at most MAX_MODEL_BYTES."""
    from emolens.models.config import MAX_MODEL_BYTES

    if isinstance(model, bytes):
        return source or "<in memory>", model
    path = Path(model)
    if not path.is_file():
        what = f"no such {format} model file" if not path.exists() else f"not a regular file; expected a .{format.lower()} model file"
        raise ModelError(f"{path}: {what}")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: file is {size / 2**20:.0f} MiB, more than the {MAX_MODEL_BYTES / 2**20:.0f} MiB a model file may hold")
    return str(path), path.read_bytes()
